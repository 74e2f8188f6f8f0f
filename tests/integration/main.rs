//! gib's integration tests: one binary, one module per capability, shared helpers in `util`.
//!
//! They use the real tools (skopeo, umoci, podman, Portage, a registry). A test that cannot
//! find a tool it needs fails; it never skips silently.

mod architecture;
mod audit;
mod binhost;
mod chains;
mod cli_text;
mod config;
mod confinement;
mod distfiles;
mod emerge;
mod emit;
mod fixture;
mod hostile;
mod hostile_network;
mod image_tests;
mod inspect_page;
mod lint;
mod lock;
mod multiarch;
mod multiarch_index;
mod oci;
mod outputs;
mod parallel;
mod platform_lock;
mod preflight;
mod progress;
mod provenance;
mod push;
mod quality;
mod real_packages;
mod reference;
mod registry;
mod registry_cache;
mod registry_index;
mod registry_server;
mod reproducible;
mod sandbox;
mod sbom;
mod scripts;
mod shell_scripts;
mod sources;
mod stage3;
mod util;
