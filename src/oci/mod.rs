//! OCI images from trees: layer tars, compression, digests, config, manifest and index.
//! Knows nothing of Gentoo.
