//! The resolved form of a `Config`: images in build order with their parents, tags, and the
//! exact Portage files to write. `gib plan` prints it; `gib build` executes it.
