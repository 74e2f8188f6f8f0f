//! gib.yaml: the strict, typed form of the user's configuration (see the design contract),
//! and the predecessor's single-image `config.yaml`. Parsing and validation only; what the
//! keys mean is resolved in `plan`.
