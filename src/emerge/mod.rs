//! Running `emerge --root=/staging` for an image's atoms inside the builder root.
