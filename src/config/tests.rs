//! Loader tests on small files written to a scratch directory.

use super::validate::{DEFAULT_PORTAGE_GIT_URI, DEFAULT_STAGE3_MIRROR};
use super::*;

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str) -> Result<Config> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gib.yaml", text);
    load(&path)
}

fn user_error(text: &str) -> UserError {
    let err = load_text(text).expect_err("the file should be rejected");
    match err.downcast::<UserError>() {
        Ok(e) => e,
        Err(other) => panic!("not a UserError: {other:#}"),
    }
}

const STAGE3: &str = "stage3:\n  flavor: amd64-openrc\n";

#[test]
fn minimal_file_gets_defaults() {
    let config = load_text(&format!(
        "{STAGE3}images:\n  base:\n    packages: sys-libs/glibc\n"
    ))
    .unwrap();
    assert_eq!(
        config.stage3,
        Some(Stage3::Flavor {
            flavor: "amd64-openrc".into(),
            mirror: DEFAULT_STAGE3_MIRROR.into(),
            pin: None
        })
    );
    assert_eq!(config.portage.sync_type, SyncType::Git);
    assert_eq!(config.portage.uri.as_deref(), Some(DEFAULT_PORTAGE_GIT_URI));
    assert!(config.build.keep_package_db);
    assert_eq!(config.build.compression, Compression::Gzip);
    assert_eq!(config.build.binhost, Binhost::None);
    let base = &config.images["base"];
    assert_eq!(base.from, Parent::Scratch);
    assert_eq!(base.packages, ["sys-libs/glibc"]);
    assert!(base.wants_latest());
    assert!(config.file.is_absolute());
}

fn message(text: &str) -> (String, Option<String>) {
    let err = user_error(text);
    // The label is the path the test passed; keep only what follows it.
    let message = err
        .message
        .split_once("gib.yaml:")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(err.message);
    (message, err.hint)
}

#[test]
fn probe_messages() {
    for text in [
        "imges: {}\n",
        "images:\n  a:\n    pakages: x/y\n",
        "images: [\n",
        "images:\n  a:\n    latest: maybe\n",
        "images:\n  a:\n    packages: {a: b}\n",
        "images:\n  a:\n    from: b\n",
        "",
        "hello",
        "images:\n  a:\n    packages: sys-libs/glibc\n  a:\n    packages: x/y\n",
    ] {
        eprintln!("{text:?} => {:?}", message(text));
    }
}
