//! OCI images from trees: layer tars, compression, digests, config, manifest and index.
//! Knows nothing of Gentoo.
//!
//! `layer` turns a tree into a stored layer blob, `image` stacks layers into a config and a
//! manifest, `blob` is the content-addressed store both write into, `unpack` turns a tarball
//! back into a tree.

pub mod blob;
pub mod image;
pub mod layer;
pub(crate) mod tar_stream;
pub mod unpack;
