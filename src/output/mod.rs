//! Where finished images go: an OCI layout directory, a docker/podman-loadable archive, a
//! registry.
//!
//! Every output is written beside its final place and renamed into it, so a failed build
//! (a full disk included) leaves the previous output as it was.

pub mod archive;
pub mod layout;
pub mod registry;

use crate::oci::image::Image;

/// One image under one reference.
#[derive(Debug, Clone)]
pub struct TaggedImage<'a> {
    pub image: &'a Image,
    /// `name:tag` or `registry/name:tag`.
    pub reference: String,
}
