//! `gib build` of `rootfs:` images, checked with tools nobody here wrote: skopeo (layout and
//! archive metadata), umoci (unpacks layers; compared entry by entry with the source tree)
//! and podman (loads the archive and runs an image).
//!
//! These tests run as root (device nodes, owners, a tmpfs for the full-disk cases).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::util::{as_test_user, gib, gib_bin, require_tool, run_ok, scratch_dir};

const SDE: i64 = 1_700_000_000;

fn sh(script: &str) {
    run_ok(Command::new("sh").args(["-euc", script]));
}

/// A tree with every case the layer writer must get right.
fn awkward_tree(root: &Path) {
    require_tool("setcap");
    require_tool("setfattr");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("shared")).unwrap();
    fs::set_permissions(root.join("shared"), fs::Permissions::from_mode(0o2775)).unwrap();
    fs::write(root.join("bin/suid"), b"#!/bin/true\n").unwrap();
    fs::set_permissions(root.join("bin/suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("bin/sgid"), b"sgid").unwrap();
    fs::set_permissions(root.join("bin/sgid"), fs::Permissions::from_mode(0o2711)).unwrap();
    fs::write(root.join("portage-owned"), b"250").unwrap();
    chown(root.join("portage-owned"), Some(250), Some(250)).unwrap();
    fs::write(root.join("nobody-owned"), b"65534").unwrap();
    chown(root.join("nobody-owned"), Some(65534), Some(65534)).unwrap();
    // Long names: a 200-byte file name under a path well over 256 bytes.
    let deep = root.join("d".repeat(120)).join("e".repeat(120));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("f".repeat(200)), b"long").unwrap();
    fs::write(root.join("héllo-wörld-ü.txt"), "non-ascii").unwrap();
    fs::write(root.join("日本語"), "cjk").unwrap();
    fs::write(root.join("hard-a"), vec![b'x'; 10_000]).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    symlink("hard-a", root.join("sym-relative")).unwrap();
    symlink("/does/not/exist", root.join("sym-dangling")).unwrap();
    symlink("/bin/suid", root.join("sym-absolute")).unwrap();
    fs::write(root.join("caps"), b"caps").unwrap();
    fs::write(root.join("xattr-user"), b"x").unwrap();
    fs::write(root.join("future"), b"from the future").unwrap();
    fs::write(root.join("old"), b"from the past").unwrap();
    let r = root.display();
    sh(&format!(
        "cd '{r}'
         mkfifo -m 0640 fifo
         mknod -m 0666 null c 1 3
         mknod -m 0660 loop7 b 7 7
         setcap cap_net_bind_service+ep caps
         setfattr -n user.gib -v hello xattr-user
         touch -d 2100-01-01T00:00:00Z future
         touch -h -d 2001-02-03T04:05:06Z old sym-relative"
    ));
}

/// What umoci's unpacked tree must match, per relative path.
#[derive(Debug, PartialEq)]
struct EntryInfo {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    content: Option<String>,
    link: Option<PathBuf>,
    rdev: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
    /// Not for directories (creating children changes them during an unpack).
    mtime: Option<i64>,
    /// The first path (in sorted order) sharing this inode, for hardlinked files.
    hardlink_of: Option<String>,
}

fn snapshot(root: &Path, clamp: Option<i64>) -> BTreeMap<String, EntryInfo> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(entry.path()).unwrap();
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_fifo() {
            "fifo"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else {
            "other"
        };
        let content = ft.is_file().then(|| {
            let bytes = fs::read(entry.path()).unwrap();
            hex::encode(Sha256::digest(bytes))
        });
        let hardlink_of = (ft.is_file() && meta.nlink() > 1)
            .then(|| inodes.entry(meta.ino()).or_insert(rel.clone()).clone());
        let xattrs = xattr::list(entry.path())
            .unwrap()
            .filter(|k| k != "security.selinux")
            .map(|k| {
                let v = xattr::get(entry.path(), &k).unwrap().unwrap_or_default();
                (k.to_string_lossy().into_owned(), v)
            })
            .collect();
        let mtime = match clamp {
            Some(epoch) => meta.mtime().min(epoch),
            None => meta.mtime(),
        };
        out.insert(
            rel,
            EntryInfo {
                kind: kind.into(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
                size: if ft.is_file() { meta.len() } else { 0 },
                content,
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(entry.path()).unwrap()),
                rdev: meta.rdev(),
                xattrs,
                mtime: (!ft.is_dir()).then_some(mtime),
                hardlink_of,
            },
        );
    }
    out
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("gib.yaml");
    fs::write(&file, text).unwrap();
    file
}

/// `gib build` with a private cache; returns the command to add outputs to.
fn gib_build(config: &Path, cache: &Path) -> Command {
    let mut cmd = gib();
    cmd.arg("build")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", SDE.to_string());
    cmd
}

fn index_digest(layout: &Path, tag: &str) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn skopeo_inspect(image: &str) -> serde_json::Value {
    let out = run_ok(Command::new(require_tool("skopeo")).args(["inspect", image]));
    serde_json::from_str(&out).unwrap()
}

fn skopeo_raw(image: &str) -> serde_json::Value {
    let out = run_ok(Command::new(require_tool("skopeo")).args(["inspect", "--raw", image]));
    serde_json::from_str(&out).unwrap()
}

fn umoci_unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    run_ok(
        Command::new(require_tool("umoci"))
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{tag}", layout.display()))
            .arg(bundle),
    );
    bundle.join("rootfs")
}

#[test]
fn awkward_tree_roundtrips_through_skopeo_and_umoci() {
    assert!(
        crate::util::is_root(),
        "this test needs root (mknod, chown)"
    );
    let tmp = scratch_dir("oci-awkward");
    let tree = tmp.path().join("tree");
    awkward_tree(&tree);
    let config = write_config(
        tmp.path(),
        "images:\n  awkward:\n    rootfs: ./tree\n    tag: \"1.0\"\n    \
         env: {A: \"1\"}\n    labels: {org.opencontainers.image.source: https://example.org/x}\n",
    );
    let layout = tmp.path().join("oci");
    let archive = tmp.path().join("awkward.tar");
    run_ok(
        gib_build(&config, &tmp.path().join("cache"))
            .arg("--oci-layout")
            .arg(&layout)
            .arg("--archive")
            .arg(&archive),
    );

    let digest = index_digest(&layout, "awkward:1.0");
    let from_layout = skopeo_inspect(&format!("oci:{}:awkward:1.0", layout.display()));
    assert_eq!(from_layout["Digest"], digest.as_str());
    assert_eq!(from_layout["Created"], "2023-11-14T22:13:20Z");
    let from_archive = skopeo_inspect(&format!("oci-archive:{}:awkward:1.0", archive.display()));
    assert_eq!(from_archive["Digest"], digest.as_str());
    let manifest = skopeo_raw(&format!("oci:{}:awkward:1.0", layout.display()));
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.org/x"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.ref.name"],
        "awkward:1.0"
    );

    let rootfs = umoci_unpack(&layout, "awkward:1.0", &tmp.path().join("bundle"));
    let expected = snapshot(&tree, Some(SDE));
    let actual = snapshot(&rootfs, None);
    for (path, want) in &expected {
        let got = actual
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing after umoci unpack"));
        assert_eq!(got, want, "{path} differs after umoci unpack");
    }
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    // The clamp only touched the file from the future.
    assert_eq!(actual["future"].mtime, Some(SDE));
    assert_eq!(actual["old"].mtime, Some(981_173_106));
    assert!(actual["caps"].xattrs.contains_key("security.capability"));
}

/// A busybox image `registry.example.org/gib/base:1` and a child `app:2` with a layer of its
/// own, built into an OCI layout and an archive in `dir`: (layout, archive).
fn busybox_chain(dir: &Path) -> (PathBuf, PathBuf) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "this test needs a static busybox (apt-get install busybox-static)"
    );
    fs::create_dir_all(dir.join("base/bin")).unwrap();
    fs::copy(busybox, dir.join("base/bin/busybox")).unwrap();
    fs::create_dir_all(dir.join("app/etc")).unwrap();
    fs::write(dir.join("app/etc/message"), "from the child layer\n").unwrap();
    let config = write_config(
        dir,
        "registry: registry.example.org/gib\nimages:\n  \
         base:\n    rootfs: ./base\n    tag: \"1\"\n    \
         cmd: [/bin/busybox, echo, hello from gib]\n  \
         app:\n    from: base\n    rootfs: ./app\n    tag: \"2\"\n    \
         entrypoint: [/bin/busybox]\n    cmd: [cat, /etc/message]\n",
    );
    let layout = dir.join("oci");
    let archive = dir.join("images.tar");
    run_ok(
        gib_build(&config, &dir.join("cache"))
            .arg("--oci-layout")
            .arg(&layout)
            .arg("--archive")
            .arg(&archive),
    );
    (layout, archive)
}

#[test]
fn podman_loads_the_archive_and_runs_a_child_image() {
    let podman = require_tool("podman");
    let tmp = scratch_dir("oci-podman");
    let (layout, archive) = busybox_chain(tmp.path());

    // The child has the parent's layer plus its own.
    let base = skopeo_raw(&format!(
        "oci:{}:registry.example.org/gib/base:1",
        layout.display()
    ));
    let app = skopeo_raw(&format!(
        "oci:{}:registry.example.org/gib/app:2",
        layout.display()
    ));
    assert_eq!(base["layers"].as_array().unwrap().len(), 1);
    assert_eq!(app["layers"].as_array().unwrap().len(), 2);
    assert_eq!(app["layers"][0], base["layers"][0]);

    let root = tmp.path().join("podman-root");
    // podman refuses a runroot path longer than 50 characters.
    let runroot_dir = tempfile::Builder::new()
        .prefix("gib-podman-")
        .tempdir_in("/tmp")
        .unwrap();
    let runroot = runroot_dir.path().to_path_buf();
    let podman_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&podman);
        cmd.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(["--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args);
        cmd
    };
    let loaded = run_ok(podman_cmd(&["load", "-i"]).arg(&archive));
    assert!(
        loaded.contains("registry.example.org/gib/base:1"),
        "{loaded}"
    );
    assert!(
        loaded.contains("registry.example.org/gib/app:2"),
        "{loaded}"
    );
    let limits = [
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1024:1024",
    ];
    let mut run_base = podman_cmd(&["run", "--rm"]);
    run_base.args(limits).arg("registry.example.org/gib/base:1");
    assert_eq!(run_ok(&mut run_base).trim(), "hello from gib");
    let mut run_app = podman_cmd(&["run", "--rm"]);
    run_app.args(limits).arg("registry.example.org/gib/app:2");
    assert_eq!(run_ok(&mut run_app).trim(), "from the child layer");
}

/// A private Docker daemon (Debian's docker.io) on a socket of its own, stopped on drop.
struct Dockerd {
    child: std::process::Child,
    socket: PathBuf,
    _runtime: tempfile::TempDir,
}

impl Dockerd {
    fn start(data: &Path) -> Dockerd {
        let dockerd = require_tool("dockerd");
        require_tool("docker");
        // Socket paths are short; the exec root holds containerd's sockets.
        let runtime = tempfile::Builder::new()
            .prefix("gib-dk-")
            .tempdir_in("/tmp")
            .unwrap();
        let socket = runtime.path().join("docker.sock");
        let log = fs::File::create(data.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
            .arg("--data-root")
            .arg(data.join("root"))
            .arg("--exec-root")
            .arg(runtime.path().join("exec"))
            .arg("--pidfile")
            .arg(runtime.path().join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--storage-driver",
                "vfs",
                "--iptables=false",
                "--ip6tables=false",
            ])
            .args(["--bridge", "none"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let daemon = Dockerd {
            child,
            socket,
            _runtime: runtime,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !daemon
            .docker(&["version"])
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "dockerd did not start: {}",
                fs::read_to_string(data.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        daemon
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker");
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        cmd
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd too.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn docker_loads_the_archive_and_runs_a_child_image() {
    let tmp = scratch_dir("oci-docker");
    let (_, archive) = busybox_chain(tmp.path());
    let docker = Dockerd::start(tmp.path());
    let loaded = run_ok(docker.docker(&["load", "-i"]).arg(&archive));
    for reference in [
        "registry.example.org/gib/base:1",
        "registry.example.org/gib/app:2",
    ] {
        assert!(loaded.contains(reference), "{loaded}");
    }
    let run =
        |image: &str| run_ok(&mut docker.docker(&["run", "--rm", "--network", "none", image]));
    assert_eq!(
        run("registry.example.org/gib/base:1").trim(),
        "hello from gib"
    );
    assert_eq!(
        run("registry.example.org/gib/app:2").trim(),
        "from the child layer"
    );
    // Docker sees the child as the parent's layer plus one.
    let layers = run_ok(&mut docker.docker(&[
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        "registry.example.org/gib/app:2",
    ]));
    assert_eq!(layers.trim(), "2");
}

#[test]
fn same_tree_twice_gives_the_same_digest_and_zstd_works() {
    let tmp = scratch_dir("oci-determinism");
    awkward_tree(&tmp.path().join("tree"));
    let gzip_config = write_config(
        tmp.path(),
        "images:\n  same:\n    rootfs: ./tree\n    tag: t\n",
    );
    let mut digests = Vec::new();
    for run in ["one", "two"] {
        let layout = tmp.path().join(format!("oci-{run}"));
        run_ok(
            gib_build(&gzip_config, &tmp.path().join(format!("cache-{run}")))
                .arg("--oci-layout")
                .arg(&layout),
        );
        digests.push(index_digest(&layout, "same:t"));
    }
    assert_eq!(digests[0], digests[1]);

    let zstd_dir = tmp.path().join("zstd");
    fs::create_dir_all(&zstd_dir).unwrap();
    let zstd_config = write_config(
        &zstd_dir,
        "build:\n  compression: zstd\nimages:\n  same:\n    rootfs: ../tree\n    tag: z\n",
    );
    let layout = tmp.path().join("oci-zstd");
    run_ok(
        gib_build(&zstd_config, &tmp.path().join("cache-one"))
            .arg("--oci-layout")
            .arg(&layout),
    );
    let manifest = skopeo_raw(&format!("oci:{}:same:z", layout.display()));
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // umoci 0.4.7 cannot read zstd layers: skopeo (which decompresses and checks them)
    // recompresses the image to gzip for it.
    let regzipped = tmp.path().join("oci-regzipped");
    run_ok(
        Command::new(require_tool("skopeo"))
            .args(["copy", "--dest-compress", "--dest-compress-format", "gzip"])
            .arg(format!("oci:{}:same:z", layout.display()))
            .arg(format!("oci:{}:same:z", regzipped.display())),
    );
    let rootfs = umoci_unpack(&regzipped, "same:z", &tmp.path().join("bundle"));
    let source = snapshot(&tmp.path().join("tree"), Some(SDE));
    assert_eq!(snapshot(&rootfs, None), source);
}

#[test]
fn layout_keeps_other_entries_and_replaces_the_same_reference() {
    let tmp = scratch_dir("oci-layout-merge");
    fs::create_dir_all(tmp.path().join("a")).unwrap();
    fs::write(tmp.path().join("a/one"), "1").unwrap();
    let layout = tmp.path().join("oci");
    let cache = tmp.path().join("cache");
    let config = write_config(tmp.path(), "images:\n  a:\n    rootfs: ./a\n    tag: v\n");
    run_ok(gib_build(&config, &cache).arg("--oci-layout").arg(&layout));
    let config = write_config(tmp.path(), "images:\n  b:\n    rootfs: ./a\n    tag: w\n");
    run_ok(gib_build(&config, &cache).arg("--oci-layout").arg(&layout));
    let first_a = index_digest(&layout, "a:v");
    fs::write(tmp.path().join("a/one"), "changed").unwrap();
    let config = write_config(tmp.path(), "images:\n  a:\n    rootfs: ./a\n    tag: v\n");
    run_ok(gib_build(&config, &cache).arg("--oci-layout").arg(&layout));
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    // Two images, each tagged and (built from scratch) `latest`, and their SBOMs and
    // provenances: the replaced build of `a` took its artifacts with it.
    let entries = index["manifests"].as_array().unwrap();
    let artifacts = |media_type: &str| {
        entries
            .iter()
            .filter(|e| e["artifactType"] == media_type)
            .count()
    };
    let images = entries
        .iter()
        .filter(|e| e["artifactType"].is_null())
        .count();
    assert_eq!(
        (
            images,
            artifacts("application/spdx+json"),
            artifacts("application/vnd.in-toto+json"),
            artifacts("application/vnd.gib.audit.v1+json")
        ),
        (4, 2, 2, 2),
        "{index}"
    );
    assert_ne!(index_digest(&layout, "a:v"), first_a);
    skopeo_inspect(&format!("oci:{}:b:w", layout.display()));
    skopeo_inspect(&format!("oci:{}:a:v", layout.display()));
}

#[test]
fn tarball_rootfs_keeps_owners_modes_and_devices() {
    let tmp = scratch_dir("oci-tarball");
    let tree = tmp.path().join("tree");
    awkward_tree(&tree);
    for (name, flag) in [
        ("root.tar.gz", "-z"),
        ("root.tar.xz", "-J"),
        ("root.tar.zst", "--zstd"),
    ] {
        sh(&format!(
            "tar --xattrs --xattrs-include='*' --numeric-owner -C '{}' {flag} -cf '{}' .",
            tree.display(),
            tmp.path().join(name).display()
        ));
    }
    let config = write_config(
        tmp.path(),
        "images:\n  dir:\n    rootfs: ./tree\n    tag: d\n  \
         gz:\n    rootfs: ./root.tar.gz\n    tag: g\n  \
         xz:\n    rootfs: ./root.tar.xz\n    tag: x\n  \
         zst:\n    rootfs: ./root.tar.zst\n    tag: z\n",
    );
    let layout = tmp.path().join("oci");
    run_ok(
        gib_build(&config, &tmp.path().join("cache"))
            .arg("--oci-layout")
            .arg(&layout),
    );
    let dir_manifest = skopeo_raw(&format!("oci:{}:dir:d", layout.display()));
    for tag in ["gz:g", "xz:x", "zst:z"] {
        let manifest = skopeo_raw(&format!("oci:{}:{tag}", layout.display()));
        assert_eq!(
            manifest["layers"], dir_manifest["layers"],
            "the tarball {tag} gives the same layer as the directory"
        );
    }
}

/// As an unprivileged user, a rootfs tarball keeps its owners (unpacked and written in the
/// user namespace), its device nodes are left out with a warning, and in a directory the
/// user's files become root's in the image while anybody else's keep their ids.
#[test]
fn rootfs_tarball_keeps_owners_rootless() {
    let tmp = scratch_dir("oci-tarball-rootless");
    let tree = tmp.path().join("tree");
    sh(&format!(
        "mkdir -p '{t}/etc' '{t}/var/lib/app' '{t}/dev' && echo root > '{t}/etc/root-file' && \
         echo app > '{t}/var/lib/app/data' && chown -R 250:250 '{t}/var/lib/app' && \
         echo s > '{t}/etc/setuid' && chmod 4755 '{t}/etc/setuid' && mknod '{t}/dev/null' c 1 3 && \
         tar --numeric-owner -C '{t}' -czf '{d}/root.tar.gz' .",
        t = tree.display(),
        d = tmp.path().display()
    ));
    let own = tmp.path().join("own");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("mine"), "mine").unwrap();
    let user = crate::util::test_user();
    run_ok(
        Command::new("chown")
            .args(["-R", &format!("{user}:")])
            .arg(&own),
    );
    fs::write(own.join("roots"), "root's").unwrap();
    fs::write(own.join("others"), "somebody else's").unwrap();
    run_ok(
        Command::new("chown")
            .arg("4321:4322")
            .arg(own.join("others")),
    );
    let config = write_config(
        tmp.path(),
        "images:\n  tarball:\n    rootfs: ./root.tar.gz\n    tag: t\n  \
         own:\n    rootfs: ./own\n    tag: o\n",
    );
    let cache = tmp.path().join("cache");
    let archive = tmp.path().join("out/images.tar");
    for dir in [&cache, &archive.parent().unwrap().to_path_buf()] {
        fs::create_dir_all(dir).unwrap();
        run_ok(Command::new("chown").arg(user).arg(dir));
    }
    let out = build_as_test_user(&config, &cache)
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 device node(s)"), "{stderr}");

    let layer = crate::util::archive_layers(&archive, "tarball:t")
        .pop()
        .unwrap();
    let owner = |path: &str| {
        let (_, mode, uid, gid) = layer[path];
        (mode, uid, gid)
    };
    assert_eq!(owner("etc/root-file"), (0o644, 0, 0));
    assert_eq!(owner("var/lib/app/data"), (0o644, 250, 250));
    assert_eq!(owner("etc/setuid"), (0o4755, 0, 0));
    assert!(!layer.contains_key("dev/null"), "{layer:?}");

    let layer = crate::util::archive_layers(&archive, "own:o")
        .pop()
        .unwrap();
    assert_eq!((layer["mine"].2, layer["mine"].3), (0, 0));
    assert_eq!((layer["roots"].2, layer["roots"].3), (0, 0));
    assert_eq!((layer["others"].2, layer["others"].3), (4321, 4322));
}

#[test]
fn missing_rootfs_is_a_usage_error() {
    let tmp = scratch_dir("oci-missing");
    let config = write_config(tmp.path(), "images:\n  gone:\n    rootfs: ./nope\n");
    let out = gib_build(&config, &tmp.path().join("cache"))
        .arg("--oci-layout")
        .arg(tmp.path().join("oci"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!tmp.path().join("oci").exists());
}

/// No temp file, no blob that is not complete, no layout entry left behind.
fn assert_no_leftovers(dir: &Path) {
    if !dir.exists() {
        return;
    }
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        assert!(
            !name.starts_with(".tmp-"),
            "leftover {}",
            entry.path().display()
        );
        if entry
            .path()
            .parent()
            .is_some_and(|p| p.ends_with("blobs/sha256"))
        {
            let bytes = fs::read(entry.path()).unwrap();
            assert_eq!(
                format!("{}", hex::encode(Sha256::digest(&bytes))),
                name,
                "a blob whose content does not match its name"
            );
        }
    }
}

#[test]
fn unreadable_file_fails_cleanly() {
    let tmp = scratch_dir("oci-unreadable");
    let tree = tmp.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("ok"), "ok").unwrap();
    fs::write(tree.join("secret"), "no").unwrap();
    fs::set_permissions(tree.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let config = write_config(tmp.path(), "images:\n  locked:\n    rootfs: ./tree\n");
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("oci");
    for dir in [&cache, &layout] {
        fs::create_dir_all(dir).unwrap();
        let uid: u32 = run_ok(Command::new("id").args(["-u", crate::util::test_user()]))
            .trim()
            .parse()
            .unwrap();
        chown(dir, Some(uid), None).unwrap();
    }
    // Root reads anything, so the unprivileged test user runs gib.
    let out = build_as_test_user(&config, &cache)
        .arg("--oci-layout")
        .arg(&layout)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("tree/secret"), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_no_leftovers(&cache);
    assert!(!layout.join("index.json").exists());
}

/// A small tmpfs mounted for the life of the value.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        fs::create_dir_all(&path).unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "gibtest"])
                .arg(&path),
        );
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn full_disk_fails_cleanly() {
    assert!(crate::util::is_root(), "this test needs root (mount tmpfs)");
    let tmp = scratch_dir("oci-full");
    let tree = tmp.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    // Incompressible, so the layer is as big as the file.
    sh(&format!(
        "head -c 4000000 /dev/urandom > '{}'",
        tree.join("noise").display()
    ));
    let config = write_config(tmp.path(), "images:\n  big:\n    rootfs: ./tree\n");

    // The cache's disk is full.
    let cache_disk = SmallDisk::mount(tmp.path().join("cache"), "1m");
    let out = gib_build(&config, &cache_disk.path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert_no_leftovers(&cache_disk.path);

    // The output's disk is full: the previous layout stays as it was.
    let cache = tmp.path().join("cache2");
    let layout_disk = SmallDisk::mount(tmp.path().join("oci"), "2m");
    let small_dir = tmp.path().join("small");
    fs::create_dir_all(small_dir.join("tree")).unwrap();
    fs::write(small_dir.join("tree/f"), "small").unwrap();
    let small = write_config(
        &small_dir,
        "images:\n  small:\n    rootfs: ./tree\n    tag: s\n",
    );
    run_ok(
        gib_build(&small, &cache)
            .arg("--oci-layout")
            .arg(&layout_disk.path),
    );
    let index_before = fs::read(layout_disk.path.join("index.json")).unwrap();
    let out = gib_build(&config, &cache)
        .arg("--oci-layout")
        .arg(&layout_disk.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        fs::read(layout_disk.path.join("index.json")).unwrap(),
        index_before
    );
    assert_no_leftovers(&layout_disk.path);

    // The archive's disk is full: no archive, no temp file.
    let archive = layout_disk.path.join("images.tar");
    let out = gib_build(&config, &cache)
        .arg("--archive")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!archive.exists());
    assert_no_leftovers(&layout_disk.path);
}

/// The layer writer as a helper process: a job as JSON in, the layer as JSON out.
#[test]
fn internal_write_layer_speaks_json() {
    use std::io::Write;
    let tmp = scratch_dir("oci-internal");
    fs::create_dir_all(tmp.path().join("tree/etc")).unwrap();
    fs::write(tmp.path().join("tree/etc/hostname"), "gib\n").unwrap();
    let job = serde_json::json!({ "write_layer": {
        "blobs": tmp.path().join("blobs"),
        "source": {"root": tmp.path().join("tree"), "removed": ["/etc/motd"], "overlay_markers": false},
        "options": {"compression": "zstd", "source_date_epoch": 0, "threads": 1},
    }});
    let mut child = gib()
        .args(["__internal", "job"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let layer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        layer["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let digest = layer["digest"].as_str().unwrap();
    let blob = tmp
        .path()
        .join("blobs/sha256")
        .join(&digest["sha256:".len()..]);
    assert_eq!(
        fs::metadata(blob).unwrap().len(),
        layer["size"].as_u64().unwrap()
    );
}

/// `gib build -f CONFIG --cache-dir CACHE` as the unprivileged test user.
fn build_as_test_user(config: &Path, cache: &Path) -> Command {
    let mut cmd = as_test_user(&gib_bin());
    cmd.arg("build")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache);
    cmd
}
