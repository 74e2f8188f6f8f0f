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

/// What the user is told about a rejected file: the message and the first hint.
struct Rejection {
    message: String,
    hint: Option<String>,
}

fn rejection(err: anyhow::Error) -> Rejection {
    let Some(user) = crate::printer::user_error(&err) else {
        panic!("not a UserError: {err:#}");
    };
    Rejection {
        message: user.message.clone(),
        hint: crate::printer::hints(&err).into_iter().next(),
    }
}

/// Load `text` as `dir/gib.yaml` (for files that name other files in `dir`).
fn load_in(dir: &Path, text: &str) -> Config {
    load(&write(dir, "gib.yaml", text)).unwrap()
}

fn user_error(text: &str) -> Rejection {
    rejection(load_text(text).expect_err("the file should be rejected"))
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

/// `(position and message, hint)` of a rejected file.
fn rejected(text: &str) -> (String, Option<String>) {
    let err = user_error(text);
    // The label is the path the test passed; keep only what follows it.
    let message = err
        .message
        .split_once("gib.yaml:")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(err.message);
    (message, err.hint)
}

fn image(body: &str) -> String {
    format!("{STAGE3}images:\n  a:\n{body}")
}

#[test]
fn unknown_keys_suggest_the_closest() {
    assert_eq!(
        rejected("imges: {}\n"),
        (
            "1:1: unknown key `imges`".into(),
            Some("did you mean `images`?".into())
        )
    );
    assert_eq!(
        rejected(&image("    pakages: x/y\n")),
        (
            "5:5: unknown key `pakages`".into(),
            Some("did you mean `packages`?".into())
        )
    );
    assert_eq!(
        rejected(&image("    packages: x/y\n    keep_header: true\n")),
        (
            "6:5: unknown key `keep_header`".into(),
            Some("did you mean `keep_headers`?".into())
        )
    );
    let (message, hint) = rejected(&image("    zzzz: 1\n"));
    assert_eq!(message, "5:5: unknown key `zzzz`");
    assert!(
        hint.unwrap()
            .starts_with("the keys allowed here are: from, packages")
    );
    assert_eq!(
        rejected("portage: {sync_type: gti}\nimages: {a: {}}\n").1,
        Some("did you mean `git`?".into())
    );
}

#[test]
fn yaml_errors_have_positions() {
    assert_eq!(
        rejected("images: [\n").0,
        "1:9: expected a mapping (`key: value` lines)"
    );
    assert_eq!(
        rejected(&image("    latest: maybe\n")).0,
        "5:13: expected true or false"
    );
    assert_eq!(
        rejected(&image("    packages: {a: b}\n")).0,
        "5:15: expected a string or a list of strings, found map"
    );
    assert_eq!(
        rejected(&image("    packages: x/y\n  a:\n    packages: x/z\n")).0,
        "6:3: duplicate key `a`"
    );
    assert_eq!(rejected("").0, "1:1: the file has no `images:`");
}

#[test]
fn stage3_needs_exactly_one_source() {
    assert_eq!(
        rejected("stage3: {flavor: amd64-openrc, url: https://x.org/s.tar.xz}\nimages: {a: {}}\n")
            .0,
        "1:37: `stage3` has both `flavor` and `url`; it needs exactly one source"
    );
    assert_eq!(
        rejected("stage3: {mirror: https://x.org}\nimages: {a: {}}\n").0,
        "1:9: `stage3` needs a source: one of `flavor`, `url` or `path`"
    );
    assert_eq!(
        rejected("stage3: {url: https://x.org/s.tar.xz, sha512: abc}\nimages: {a: {}}\n").0,
        "1:47: `sha512` must be 128 hexadecimal digits (the output of sha512sum)"
    );
    let sha = "AB".repeat(64);
    let config = load_text(&format!(
        "stage3: {{url: https://x.org/s.tar.xz, sha512: {sha}}}\nimages: {{a: {{}}}}\n"
    ))
    .unwrap();
    assert_eq!(
        config.stage3,
        Some(Stage3::Url {
            url: "https://x.org/s.tar.xz".into(),
            sha512: Some("ab".repeat(64))
        })
    );
}

/// Keys and CAs other than Gentoo's come from gib.yaml only, and only where they check
/// something: a flavor's signatures, a webrsync snapshot's, an HTTPS repository host.
#[test]
fn trust_other_keys_only_where_gib_yaml_names_them() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "team.asc", "");
    write(dir.path(), "ca.pem", "");
    let fpr = "AAAA BBBB CCCC DDDD EEEE FFFF 0000 1111 2222 3333";
    let config = load_in(
        dir.path(),
        &format!(
            "stage3:\n  flavor: amd64-openrc\n  fingerprint: {fpr}\n  keyring: ./team.asc\n  \
             ca_certificate: ./ca.pem\nportage:\n  sync_type: webrsync\n  \
             fingerprint: 0x{}\n  ca_certificate: ./ca.pem\nimages: {{a: {{}}}}\n",
            "1".repeat(40)
        ),
    );
    let trust = &config.trust;
    assert_eq!(trust.releng.fingerprint, fpr.replace(' ', ""));
    assert_eq!(trust.releng.keyring, Some(dir.path().join("team.asc")));
    assert_eq!(trust.stage3_ca_certificate, Some(dir.path().join("ca.pem")));
    assert_eq!(trust.snapshots.fingerprint, "1".repeat(40));
    assert_eq!(trust.snapshots.keyring, None);
    assert_eq!(
        config.portage.ca_certificate,
        Some(dir.path().join("ca.pem"))
    );
    assert!(!trust.releng.is_builtin());

    let gentoo = load_text(&format!("{STAGE3}images: {{a: {{}}}}\n")).unwrap();
    assert_eq!(gentoo.trust, crate::openpgp::Trust::gentoo());
    assert!(gentoo.trust.releng.is_builtin() && gentoo.trust.snapshots.is_builtin());

    assert_eq!(
        rejected("stage3: {flavor: amd64-openrc, keyring: ./k.asc}\nimages: {a: {}}\n"),
        (
            "1:41: `stage3.keyring` needs `stage3.fingerprint`".to_string(),
            Some(
                "the keyring holds the key material; the fingerprint says which key gib trusts"
                    .to_string()
            )
        )
    );
    assert_eq!(
        rejected(
            "stage3: {flavor: amd64-openrc, fingerprint: BB572E0E2D182910}\nimages: {a: {}}\n"
        )
        .0,
        "1:45: `BB572E0E2D182910` is not an OpenPGP v4 fingerprint"
    );
    let sha = "ab".repeat(64);
    assert!(
        rejected(&format!(
            "stage3: {{url: https://x.org/s.tar.xz, sha512: {sha}, fingerprint: {}}}\nimages: {{a: {{}}}}\n",
            "1".repeat(40)
        ))
        .0
        .contains("`fingerprint` applies to a stage3 `flavor`")
    );
    assert!(
        rejected(&format!(
            "{STAGE3}portage: {{sync_type: git, fingerprint: {}}}\nimages: {{a: {{}}}}\n",
            "1".repeat(40)
        ))
        .0
        .contains("they need `sync_type: webrsync`")
    );
}

#[test]
fn stage3_is_required_unless_every_image_is_rootfs() {
    assert_eq!(
        rejected("images:\n  a:\n    packages: sys-libs/glibc\n").0,
        "2:3: image `a` is built with Portage, but the file has no `stage3:`"
    );
}

#[test]
fn parents_must_exist_and_not_cycle() {
    assert_eq!(
        rejected(&format!(
            "{STAGE3}images:\n  base: {{}}\n  app:\n    from: bsae\n"
        )),
        (
            "6:11: `from: bsae` names no image of this file".into(),
            Some("did you mean `base`?".into())
        )
    );
    assert_eq!(
        rejected(&image("    from: a\n")).0,
        "5:11: the images form a cycle: a -> a"
    );
    assert_eq!(
        rejected(&format!(
            "{STAGE3}images:\n  b:\n    from: a\n  a:\n    from: b\n"
        ))
        .0,
        "7:11: the images form a cycle: a -> b -> a"
    );
    // An image of this file with a tag is no registry reference.
    assert_eq!(
        rejected(&format!(
            "{STAGE3}images:\n  image: {{}}\n  app:\n    from: image:2025.1\n"
        )),
        (
            "6:11: `from: image:2025.1` names the image `image` of this file with a tag".into(),
            Some(
                "an image of this file is named alone (`from: image`); to build on a published \
                 image, write its full reference (registry.example.org/image:2025.1)"
                    .into()
            )
        )
    );
    let config = load_text(&format!(
        "{STAGE3}images:\n  a: {{from: scratch}}\n  b: {{from: \"docker.io/library/alpine:3\"}}\n  c: {{from: ghcr.io/x/y@sha256:00}}\n  d: {{from: a}}\n"
    ))
    .unwrap();
    assert_eq!(config.images["a"].from, Parent::Scratch);
    assert_eq!(
        config.images["b"].from,
        Parent::Registry("docker.io/library/alpine:3".into())
    );
    assert!(matches!(config.images["c"].from, Parent::Registry(_)));
    assert_eq!(config.images["d"].from, Parent::Image("a".into()));
}

#[test]
fn atoms_are_checked() {
    assert_eq!(
        rejected(&image("    packages: [\"\"]\n")).0,
        "5:16: empty package atom"
    );
    assert_eq!(
        rejected(&image("    packages: [sys-libs/glibc, python]\n")).0,
        "5:32: invalid package atom `python`: expected `category/package` (e.g. dev-lang/python)"
    );
    assert_eq!(
        rejected(&image("    packages: dev-lang/python-3.12\n")).0,
        "5:15: invalid package atom `dev-lang/python-3.12`: a version needs an operator (e.g. =dev-lang/python-3.12)"
    );
    let config = load_text(&image(
        "    packages:\n      - \">=dev-lang/python-3.12:3.12\"\n      - sys-libs/glibc\n",
    ))
    .unwrap();
    assert_eq!(
        config.images["a"].packages,
        [">=dev-lang/python-3.12:3.12", "sys-libs/glibc"]
    );
    assert_eq!(
        rejected(&format!(
            "{STAGE3}build:\n  package_use_flags:\n    python: [x]\nimages: {{a: {{}}}}\n"
        ))
        .0,
        "5:5: invalid package atom `python`: expected `category/package` (e.g. dev-lang/python)"
    );
}

#[test]
fn rootfs_is_exclusive_and_paths_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    let path = write(
        dir.path(),
        "gib.yaml",
        "images:\n  a:\n    rootfs: ./tree\n    packages: x/y\n",
    );
    let err = rejection(load(&path).unwrap_err());
    assert!(
        err.message
            .ends_with("gib.yaml:3:13: image `a` has both `rootfs:` and `packages:`"),
        "{}",
        err.message
    );

    write(
        dir.path(),
        "gib.yaml",
        "images:\n  a:\n    rootfs: ./missing\n",
    );
    let err = rejection(load(&path).unwrap_err());
    assert!(
        err.message
            .ends_with("gib.yaml:3:13: rootfs `./missing` does not exist"),
        "{}",
        err.message
    );

    write(
        dir.path(),
        "gib.yaml",
        "images:\n  a:\n    rootfs: ./tree\n",
    );
    let config = load(&path).unwrap();
    let base = dir.path().canonicalize().unwrap();
    assert_eq!(config.images["a"].rootfs, Some(base.join("tree")));
    assert_eq!(config.stage3, None);
}

#[test]
fn builder_packages_and_context() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    write(dir.path(), "build.sh", "gib_go_build \"$GIB_CONTEXT\"\n");
    let file = |body: &str| {
        write(
            dir.path(),
            "gib.yaml",
            &format!("{STAGE3}images:\n  a:\n{body}"),
        )
    };
    let error = |path: &Path| {
        let err = rejection(load(path).unwrap_err());
        let message = err.message.split_once("gib.yaml:").unwrap().1.to_string();
        (message, err.hint)
    };

    let path = file(
        "    builder_packages: [dev-lang/go, \">=dev-lang/rust-1.80\"]\n    script: ./build.sh\n    context: ./src\n",
    );
    let config = load(&path).unwrap();
    let a = &config.images["a"];
    assert_eq!(a.builder_packages, ["dev-lang/go", ">=dev-lang/rust-1.80"]);
    let base = dir.path().canonicalize().unwrap();
    assert_eq!(a.context, Some(base.join("src")));
    assert_eq!(a.script, Some(base.join("build.sh")));

    let path = file("    builder_packages: dev-lang/go\n");
    assert_eq!(
        load(&path).unwrap().images["a"].builder_packages,
        ["dev-lang/go"]
    );

    let path = file("    builder_packages: [go]\n");
    let (message, _) = error(&path);
    assert!(message.starts_with("5:24: "), "{message}");
    assert!(message.contains("`go`"), "{message}");

    let path = file("    context: ./src\n");
    let (message, hint) = error(&path);
    assert_eq!(message, "5:14: image `a` has `context:` but no `script:`");
    assert!(hint.unwrap().contains("script"));

    let path = file("    script: ./build.sh\n    context: ./build.sh\n");
    assert_eq!(
        error(&path).0,
        "6:14: context `./build.sh` is not a directory"
    );

    let path = file("    script: ./build.sh\n    context: ./nowhere\n");
    assert_eq!(error(&path).0, "6:14: context `./nowhere` does not exist");

    std::fs::create_dir(dir.path().join("tree")).unwrap();
    let path = file("    rootfs: ./tree\n    builder_packages: dev-lang/go\n");
    assert_eq!(
        error(&path).0,
        "5:13: image `a` has both `rootfs:` and `builder_packages:`"
    );
}

#[test]
fn modes_ports_layering_accounts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "nginx.conf", "events {}\n");
    let path = write(
        dir.path(),
        "gib.yaml",
        &image(concat!(
            "    expose: [\"8080\", 53/udp]\n",
            "    layering: {strategy: per-package}\n",
            "    accounts:\n",
            "      users: [{name: www, uid: 1000}]\n",
            "      run_as: www\n",
            "    paths:\n",
            "      - {path: /etc/nginx.conf, type: file, source: nginx.conf, mode: \"0644\"}\n",
            "      - {path: /srv, type: directory}\n",
        )),
    );
    let config = load(&path).unwrap();
    let a = &config.images["a"];
    assert_eq!(a.runtime.expose, ["8080/tcp", "53/udp"]);
    assert_eq!(a.layering.strategy, LayeringStrategy::PerPackage);
    assert_eq!(a.layering.budget, 8);
    assert_eq!(a.runtime.user.as_deref(), Some("www"));
    assert_eq!(a.accounts.as_ref().unwrap().users[0].gid, 1000);
    assert_eq!(a.paths[0].mode, Some(0o644));
    assert_eq!(
        a.paths[0].kind,
        PathKind::File {
            source: dir.path().canonicalize().unwrap().join("nginx.conf")
        }
    );
    assert_eq!(config.images["a"].layering.budget, 8);

    assert_eq!(
        rejected(&image(
            "    paths: [{path: /x, type: directory, mode: 0755}]\n"
        ))
        .0,
        "5:47: the mode 755 must be a quoted octal string"
    );
    assert_eq!(
        rejected(&image("    expose: [8080/http]\n")).0,
        "5:14: `8080/http` is not a port to expose (e.g. 8080/tcp, 53/udp)"
    );
    assert_eq!(
        rejected(&image("    layering: {strategy: per-pakage}\n")).1,
        Some("did you mean `per-package`?".into())
    );
    assert_eq!(
        rejected(&image(
            "    accounts: {users: [{name: www, uid: 1}], run_as: ww}\n"
        ))
        .0,
        "5:54: `run_as: ww` names no user of `accounts.users`"
    );
    assert_eq!(
        rejected(&image("    paths: [{path: /x, type: file}]\n")).0,
        "5:13: `/x` is a file: it needs `source:`, the file to copy"
    );
    assert_eq!(
        rejected(&image("    workdir: srv\n")).0,
        "5:14: workdir `srv` must be an absolute path in the image"
    );
}

#[test]
fn the_contract_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/contract/gib.yaml");
    let config = load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(config.images.len(), 5);
    assert_eq!(config.build.binhost, Binhost::Official);
    assert_eq!(config.portage.pin.as_deref(), Some("2026-11-20"));
    assert_eq!(config.repositories[0].name, "mine");
    assert!(
        config.repositories[0]
            .ca_certificate
            .as_ref()
            .unwrap()
            .is_file()
    );
    assert_eq!(
        config.build.package_use_flags["dev-lang/python"],
        ["-ensurepip", "sqlite"]
    );
    assert_eq!(
        config.registry.as_deref(),
        Some("registry.example.org/mycontainers")
    );
}

const PREDECESSOR: &str = "\
portage_mirror:
    sync_type: git
    uri: https://github.com/gentoo-mirror/gentoo.git
build:
    threads: 12
    max_parallel_jobs: 12
    global_use_flags:
        add:
        remove:
            - systemd
            - X
    package_use_flags:
custom_ebuild_repository: false
target:
    container_tag: mycontainers/python
    package_atoms: dev-lang/python
";

#[test]
fn predecessor_format_is_one_image() {
    let config = load_text(PREDECESSOR).unwrap();
    assert_eq!(config.images.keys().collect::<Vec<_>>(), ["python"]);
    let python = &config.images["python"];
    assert_eq!(python.from, Parent::Scratch);
    assert_eq!(python.packages, ["dev-lang/python"]);
    assert_eq!(config.registry.as_deref(), Some("mycontainers"));
    assert_eq!(config.build.threads, Some(12));
    assert!(config.build.global_use_flags.add.is_empty());
    assert_eq!(config.build.global_use_flags.remove, ["systemd", "X"]);
    assert!(config.repositories.is_empty());
    assert_eq!(
        config.stage3,
        Some(Stage3::Flavor {
            flavor: super::legacy::LEGACY_STAGE3_FLAVOR.into(),
            mirror: DEFAULT_STAGE3_MIRROR.into(),
            pin: None
        })
    );
}

#[test]
fn predecessor_custom_repository_and_atom_list() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ca.pem", "cert\n");
    let text = PREDECESSOR
        .replace(
            "custom_ebuild_repository: false",
            "custom_ebuild_repository:\n    sync_type: git\n    uri: https://git.example.org/o.git\n    certificate: ca.pem",
        )
        .replace(
            "package_atoms: dev-lang/python",
            "package_atoms:\n        - dev-lang/python\n        - app-misc/jq",
        )
        .replace("mycontainers/python", "tools:1.0");
    let path = write(dir.path(), "config.yaml", &text);
    let config = load(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let repo = &config.repositories[0];
    assert_eq!(repo.name, super::legacy::LEGACY_REPOSITORY_NAME);
    assert_eq!(repo.uri.as_deref(), Some("https://git.example.org/o.git"));
    assert_eq!(
        repo.ca_certificate,
        Some(dir.path().canonicalize().unwrap().join("ca.pem"))
    );
    let tools = &config.images["tools"];
    assert_eq!(tools.packages, ["dev-lang/python", "app-misc/jq"]);
    assert_eq!(tools.tag.as_deref(), Some("1.0"));
    assert_eq!(config.registry, None);

    let err =
        rejection(load_text(&PREDECESSOR.replace("target:", "targte: {}\ntarget:")).unwrap_err());
    assert!(
        err.message.ends_with("gib.yaml:14:1: unknown key `targte`"),
        "{}",
        err.message
    );
    assert_eq!(err.hint.as_deref(), Some("did you mean `target`?"));
}

#[test]
fn accept_licenses_names_licenses_or_groups_per_atom() {
    let with = |lines: &str| format!("{STAGE3}build:\n{lines}images:\n  a: {{packages: x/y}}\n");
    let config = load_text(&with(
        "  accept_licenses:\n    app-misc/unfree: [gib-EULA, \"@BINARY-REDISTRIBUTABLE\"]\n    \
         dev-java/x: \"-* @FREE\"\n",
    ))
    .unwrap();
    assert_eq!(
        config.build.accept_licenses,
        BTreeMap::from([
            (
                "app-misc/unfree".to_string(),
                vec![
                    "gib-EULA".to_string(),
                    "@BINARY-REDISTRIBUTABLE".to_string()
                ]
            ),
            (
                "dev-java/x".to_string(),
                vec!["-*".to_string(), "@FREE".to_string()]
            ),
        ])
    );
    let (message, hint) = rejected(&with("  accept_licenses:\n    app-misc/x: [\"+bad\"]\n"));
    assert_eq!(message, "5:18: `+bad` is not a license name");
    assert!(hint.unwrap().contains("license_groups"));
    assert_eq!(
        rejected(&with("  accept_licenses:\n    app-misc/x: []\n")).0,
        "5:17: `app-misc/x` lists no license to accept"
    );
}

#[test]
fn distfile_mirrors_are_urls_for_gentoo_mirrors() {
    let with = |lines: &str| format!("{STAGE3}build:\n{lines}images:\n  a: {{packages: x/y}}\n");
    assert_eq!(
        load_text(&with("  threads: 1\n"))
            .unwrap()
            .build
            .distfile_mirrors,
        None
    );
    let config = load_text(&with(
        "  distfile_mirrors: [http://127.0.0.1:8080/, https://mirror.example.org/gentoo]\n",
    ))
    .unwrap();
    assert_eq!(
        config.build.distfile_mirrors,
        Some(vec![
            "http://127.0.0.1:8080".to_string(),
            "https://mirror.example.org/gentoo".to_string()
        ])
    );
    let (message, hint) = rejected(&with("  distfile_mirrors: [rsync://example.org/gentoo]\n"));
    assert_eq!(
        message,
        "4:22: `rsync://example.org/gentoo` cannot be a distfile mirror"
    );
    assert!(hint.unwrap().contains("distfiles/<file>"));
    assert_eq!(
        rejected(&with("  distfile_mirrors: [mirror.example.org]\n")).0,
        "4:22: `mirror.example.org` is not a URL (`distfile_mirrors`)"
    );
    assert!(
        rejected(&with("  distfile_mirrors: [\"http://a.example.org/$x\"]\n"))
            .0
            .contains("cannot be a distfile mirror")
    );
}

#[test]
fn binhost_is_official_a_url_or_a_directory() {
    let with = |lines: &str| format!("{STAGE3}build:\n{lines}images:\n  a: {{packages: x/y}}\n");
    let dir = tempfile::tempdir().unwrap();
    let binpkgs = dir.path().canonicalize().unwrap();

    let config = load_text(&with("  binhost: http://127.0.0.1:8080/binpkgs/\n")).unwrap();
    assert_eq!(
        config.build.binhost,
        Binhost::Url {
            uri: "http://127.0.0.1:8080/binpkgs/".into(),
            verify_signature: true
        }
    );
    let config = load_text(&with(&format!(
        "  binhost: {}\n  binhost_verify_signature: false\n",
        binpkgs.display()
    )))
    .unwrap();
    assert_eq!(
        config.build.binhost,
        Binhost::Directory {
            path: binpkgs.clone(),
            verify_signature: false
        }
    );
    // A file:// URL is a directory on this machine.
    let config = load_text(&with(&format!("  binhost: file://{}\n", binpkgs.display()))).unwrap();
    assert!(matches!(config.build.binhost, Binhost::Directory { .. }));

    assert_eq!(
        rejected(&with(
            "  binhost: official\n  binhost_verify_signature: false\n"
        ))
        .0,
        "5:29: the official binhost's signatures are always verified"
    );
    assert_eq!(
        rejected(&with("  binhost_verify_signature: false\n")).0,
        "4:29: `binhost_verify_signature` needs a `binhost`"
    );
    assert_eq!(
        rejected(&with("  binhost: rsync://example.org/x\n")).0,
        "4:12: a binhost cannot be fetched over rsync://"
    );
    assert!(
        rejected(&with("  binhost: /nonexistent/binpkgs\n"))
            .0
            .contains("/nonexistent/binpkgs")
    );
    assert_eq!(
        rejected(&with("  binhost_verify_signatures: false\n")).1,
        Some("did you mean `binhost_verify_signature`?".into())
    );
}

#[test]
fn registry_prefix_must_make_references() {
    let file = |prefix: &str| {
        format!("{STAGE3}registry: {prefix}\nimages:\n  base:\n    packages: sys-libs/glibc\n")
    };
    let config = load_text(&file("registry.example.org:5000/mine/team")).unwrap();
    assert_eq!(
        config.registry.as_deref(),
        Some("registry.example.org:5000/mine/team")
    );
    for (prefix, why) in [
        ("mycontainers", "is not a registry host"),
        ("registry.example.org/Mine", "must be lowercase"),
        ("registry.example.org//x", "repository"),
        ("reg|istry.example.org/x", "is not a host name"),
    ] {
        let (message, hint) = rejected(&file(prefix));
        assert!(
            message.starts_with("3:11: ") && message.contains(why),
            "{prefix}: {message}"
        );
        assert!(hint.is_some_and(|h| h.contains("host[:port]/path")));
    }
}

#[test]
fn platforms_of_the_file_and_of_an_image() {
    let config = load_text(&format!(
        "{STAGE3}platforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    packages: sys-libs/glibc\n  tool:\n    from: base\n    platforms: [linux/arm64]\n"
    ))
    .unwrap();
    let names = |p: &Option<Vec<Platform>>| {
        p.as_ref()
            .map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    assert_eq!(
        names(&config.platforms).unwrap(),
        ["linux/amd64", "linux/arm64"]
    );
    assert_eq!(names(&config.images["base"].platforms), None);
    assert_eq!(
        names(&config.images["tool"].platforms).unwrap(),
        ["linux/arm64"]
    );
}

#[test]
fn platforms_are_refused_when_unknown_twice_empty_or_missing_from_the_parent() {
    let (message, hint) = rejected(&format!(
        "{STAGE3}platforms: [linux/amd64, linux/riscv64]\nimages:\n  base:\n    packages: sys-libs/glibc\n"
    ));
    assert_eq!(
        message,
        "3:26: `linux/riscv64` is not a platform gib builds for"
    );
    assert_eq!(hint.as_deref(), Some("one of: linux/amd64, linux/arm64"));
    let (message, _) = rejected(&format!(
        "{STAGE3}platforms: [linux/arm64, linux/arm64/v8]\nimages:\n  base:\n    packages: sys-libs/glibc\n"
    ));
    assert_eq!(message, "3:26: platform `linux/arm64/v8` is named twice");
    let (message, _) = rejected(&format!(
        "{STAGE3}images:\n  base:\n    packages: sys-libs/glibc\n    platforms: []\n"
    ));
    assert_eq!(message, "6:16: `platforms` is empty");
    let (message, hint) = rejected(&format!(
        "{STAGE3}images:\n  base:\n    packages: sys-libs/glibc\n    platforms: [linux/amd64]\n  tool:\n    from: base\n    platforms: [linux/amd64, linux/arm64]\n"
    ));
    assert_eq!(
        message,
        "7:3: image `tool` is built for linux/arm64, but its parent `base` is not"
    );
    assert_eq!(
        hint.as_deref(),
        Some("add linux/arm64 to `base`'s platforms, or leave it out of `tool`'s")
    );
}

#[test]
fn a_per_arch_stage3_names_known_arches_with_matching_checksums() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.tar.xz", "a");
    let text = |stage3: &str| {
        format!(
            "stage3:\n{stage3}platforms: [linux/arm64]\nimages:\n  base:\n    packages: sys-libs/glibc\n"
        )
    };
    let config = load_in(dir.path(), &text("  path: {arm64: a.tar.xz}\n"));
    assert!(matches!(
        &config.stage3_per_arch["arm64"],
        Stage3::Path { path, sha512: None } if path.ends_with("a.tar.xz")
    ));
    let refused = |stage3: &str| {
        let err = load(&write(dir.path(), "gib.yaml", &text(stage3))).unwrap_err();
        let r = rejection(err);
        let message = r.message.split_once("gib.yaml:").unwrap().1.to_string();
        (message, r.hint)
    };
    let (message, hint) = refused("  path: {arm46: a.tar.xz}\n");
    assert_eq!(
        message,
        "2:10: `arm46` is not a valid `stage3 architecture`"
    );
    assert_eq!(hint.as_deref(), Some("did you mean `arm64`?"));
    let (message, _) = refused(&format!(
        "  path: {{arm64: a.tar.xz}}\n  sha512: {{amd64: {}}}\n",
        "a".repeat(128)
    ));
    assert_eq!(
        message,
        "3:12: `sha512` names `amd64`, which `path` does not"
    );
    let (message, _) = refused(&format!(
        "  path: {{arm64: a.tar.xz}}\n  sha512: {}\n",
        "a".repeat(128)
    ));
    assert_eq!(
        message,
        "3:11: `sha512` must have the form of `path`: one value, or one per architecture"
    );
}

#[test]
fn lint_ignore_paths_are_absolute_and_keys_are_known() {
    let rejected = user_error(&format!(
        "{STAGE3}images:\n  a:\n    packages: x/y\n    lint: {{ignore: [usr/bin/x]}}\n"
    ));
    assert!(
        rejected
            .message
            .contains("the lint's ignore path `usr/bin/x` must be an absolute path in the image"),
        "{}",
        rejected.message
    );
    let rejected = user_error(&format!("{STAGE3}build:\n  lint: {{fails: true}}\n"));
    assert!(rejected.message.contains("fails"), "{}", rejected.message);
}
