//! OCI images from trees: layer tars, compression, digests, config, manifest and index.
//! Knows nothing of Gentoo.
//!
//! `layer` turns a tree into a stored layer blob, `image` stacks layers into a config and a
//! manifest, `blob` is the content-addressed store both write into.

pub mod blob;
pub mod image;
pub mod layer;
mod tar_stream;
