//! Finishing a staging root for a distroless image (trim, accounts, os-release) and finding
//! what an image adds over its parent (the `ChangeSet` that becomes its layer).

pub mod accounts;
pub mod changes;
pub mod files;
pub mod lint;
pub mod resolve;
pub mod sbom;
pub mod usage;
