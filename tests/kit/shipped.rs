//! Files shipped in the repository (unit, Dockerfile, manifests, Cargo.toml),
//! which the tests hold to the binary.

use std::path::{Path, PathBuf};

pub fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}
