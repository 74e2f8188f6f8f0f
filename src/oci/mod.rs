//! OCI images from trees: layer tars, compression, digests, config, manifest and index.
//! Knows nothing of Gentoo.
//!
//! `spec` is the OCI vocabulary (digest, descriptor, platform, media types, annotation keys,
//! the hashing writer, the blob path) that `output` and `registry` share too; `layer` turns a
//! tree into a stored layer blob, `image` stacks layers into a config and a manifest, `blob` is
//! the content-addressed store both write into.
//!
//! The layer writer can run in another process (e.g. a helper inside a user namespace, where
//! the tree's owners read back as the image's ids): the `write_layer` job of `crate::jobs`
//! hands it the source and options as JSON and gets the [`layer::Layer`] back as JSON. It
//! takes nothing from the environment, so the result is the same either way.

pub mod apply;
pub mod artifact;
pub mod blob;
pub mod image;
pub mod index;
pub mod layer;
pub mod spec;
pub(crate) mod tar_stream;
