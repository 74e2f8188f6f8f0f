//! Where finished images go: an OCI layout directory, a docker/podman-loadable archive, a
//! registry.
