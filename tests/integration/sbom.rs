//! The SBOM of a root, checked by validators nobody here wrote:
//! - the SPDX project's own `spdx-tools` (`pyspdxtools -i FILE`), which parses the JSON and
//!   validates it against the SPDX 2.3 rules, including that every license id is on the SPDX
//!   license list or declared in the document;
//! - the official SPDX 2.3 JSON schema, checked with `jsonschema`. spdx-tools ships no
//!   schema; `lib4sbom` ships the SPDX project's file (`lib4sbom/schemas/spdx/2.3-schema.json`).
//!
//! The package database is synthetic (written by the test) because building a real Gentoo root
//! needs a stage3 and hours of emerge; its layout is the one Portage writes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use gib::gentoo::vdb::read_installed;
use gib::rootfs::sbom::{read_os_release, spdx_document};
use gib::rootfs::usage::usage_report;

use crate::util::{require_tool, run_ok, scratch_dir};

/// Pinned so a new release cannot change what "valid" means under us.
const VALIDATORS: [&str; 3] = [
    "spdx-tools==0.8.5",
    "lib4sbom==0.10.4",
    "jsonschema==4.26.0",
];

/// Validate FILE against lib4sbom's copy of the SPDX 2.3 schema; print every error.
/// find_spec locates the package without importing it (its import pulls in much more).
const SCHEMA_CHECK: &str = r#"
import importlib.util, json, os, sys, jsonschema
package = importlib.util.find_spec("lib4sbom").submodule_search_locations[0]
with open(os.path.join(package, "schemas", "spdx", "2.3-schema.json")) as f:
    schema = json.load(f)
assert schema["$id"] == "http://spdx.org/rdf/terms/2.3", schema["$id"]
with open(sys.argv[1]) as f:
    document = json.load(f)
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(document), key=str)
for error in errors:
    print(f"{list(error.absolute_path)}: {error.message}")
sys.exit(1 if errors else 0)
"#;

/// A venv under the target dir with the validators, installed on first use. A file lock
/// keeps parallel test binaries from installing into the same venv at once.
pub(crate) fn validator_venv() -> PathBuf {
    let python = require_tool("python3");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).unwrap();
    let venv = tmp.join("spdx-validators-1");
    let done = venv.join(".installed");
    let lock = File::create(tmp.join("spdx-validators.lock")).unwrap();
    lock.lock().unwrap();
    if std::fs::read_to_string(&done).ok().as_deref() != Some(&VALIDATORS.join(" ")) {
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(Command::new(&python).args(["-m", "venv"]).arg(&venv));
        run_ok(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(VALIDATORS),
        );
        std::fs::write(&done, VALIDATORS.join(" ")).unwrap();
    }
    lock.unlock().unwrap();
    venv
}

/// Whether both validators accept `file`; their complaints go to the test output.
pub(crate) fn validate(venv: &Path, file: &Path) -> (bool, bool) {
    let spdx_tools = Command::new(venv.join("bin/pyspdxtools"))
        .arg("-i")
        .arg(file)
        .output()
        .unwrap();
    let schema = Command::new(venv.join("bin/python"))
        .args(["-c", SCHEMA_CHECK])
        .arg(file)
        .output()
        .unwrap();
    for out in [&spdx_tools, &schema] {
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    (spdx_tools.status.success(), schema.status.success())
}

fn write_package(root: &Path, cpf: &str, keys: &[(&str, &str)]) {
    let dir = root.join("var/db/pkg").join(cpf);
    std::fs::create_dir_all(&dir).unwrap();
    for (key, value) in keys {
        std::fs::write(dir.join(key), format!("{value}\n")).unwrap();
    }
}

/// Every Gentoo license name gib maps to SPDX, so the validator checks the whole table.
fn mapped_gentoo_licenses() -> Vec<&'static str> {
    include_str!("../../src/gentoo/spdx-licenses.tsv")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('\t'))
        .map(|(gentoo, _)| gentoo)
        .collect()
}

fn synthetic_root(root: &Path) -> Vec<(&'static str, &'static str)> {
    write_package(
        root,
        "sys-libs/glibc-2.40-r5",
        &[
            ("LICENSE", "LGPL-2.1+ BSD HPND ISC inner-net rc PCRE"),
            ("USE", "amd64 elibc_glibc multiarch"),
            ("IUSE", "+multiarch -static-libs"),
            ("SLOT", "2.2"),
            ("repository", "gentoo"),
            ("HOMEPAGE", "https://www.gnu.org/software/libc/"),
            ("DESCRIPTION", "GNU libc C library"),
            (
                "CONTENTS",
                "dir /usr/lib64\nobj /usr/lib64/libc.so.6 d41d8cd98f00b204e9800998ecf8427e 1700000000\nsym /lib64 -> usr/lib64 1700000000",
            ),
        ],
    );
    write_package(
        root,
        "x11-libs/gtk+-3.24.41-r1",
        &[
            ("LICENSE", "LGPL-2+ doc? ( FDL-1.1 ) !wayland? ( MIT )"),
            ("USE", "amd64 wayland"),
            ("IUSE", "+wayland doc"),
            ("repository", "gentoo"),
            (
                "SRC_URI",
                "mirror://gnome/sources/gtk+/3.24/gtk+-3.24.41.tar.xz",
            ),
        ],
    );
    write_package(
        root,
        "dev-libs/openssl-3.3.2_p1",
        &[
            ("LICENSE", "|| ( Apache-2.0 openssl ) public-domain"),
            (
                "SRC_URI",
                "https://github.com/openssl/openssl/releases/download/openssl-3.3.2/openssl-3.3.2.tar.gz",
            ),
            (
                "CONTENTS",
                "obj /usr/share/doc/openssl/a file with spaces d41d8cd98f00b204e9800998ecf8427e 1700000000",
            ),
        ],
    );
    let every_license = format!("|| ( {} )", mapped_gentoo_licenses().join(" "));
    write_package(
        root,
        "app-misc/licenses-1.0",
        &[("LICENSE", every_license.as_str())],
    );
    write_package(root, "app-misc/unlicensed-0.1", &[]);
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("usr/lib/os-release"),
        "NAME=Gentoo\nID=gentoo\nPRETTY_NAME=\"Gentoo Linux\"\nVERSION_ID=\"2.17\"\nHOME_URL=\"https://www.gentoo.org/\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
    vec![
        ("app-misc/licenses", "1.0"),
        ("app-misc/unlicensed", "0.1"),
        ("dev-libs/openssl", "3.3.2_p1"),
        ("sys-libs/glibc", "2.40-r5"),
        ("x11-libs/gtk+", "3.24.41-r1"),
    ]
}

/// The SPDX document of `root` as pretty JSON, straight from the library.
fn sbom(root: &Path) -> String {
    let packages = read_installed(root).unwrap();
    let os = read_os_release(root).unwrap();
    let document = spdx_document("base", "base:2.40", 1700000000, &packages, os.as_ref()).unwrap();
    serde_json::to_string_pretty(&document).unwrap() + "\n"
}

#[test]
fn sbom_of_a_root_is_valid_spdx_and_lists_every_package() {
    let venv = validator_venv();
    let dir = scratch_dir("sbom");
    let root = dir.path().join("root");
    let expected = synthetic_root(&root);

    let text = sbom(&root);
    assert_eq!(text, sbom(&root), "two runs on the same root differ");
    let file = dir.path().join("base.spdx.json");
    std::fs::write(&file, &text).unwrap();
    assert_eq!(validate(&venv, &file), (true, true), "{text}");

    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let listed: Vec<(String, String)> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .unwrap()
                .starts_with("SPDXRef-Package-")
        })
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["versionInfo"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(doc["packages"][1]["name"], "gentoo");
    let declared = |name: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["licenseDeclared"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        declared("dev-libs/openssl"),
        "(Apache-2.0 OR OpenSSL) AND LicenseRef-Gentoo-public-domain"
    );
    assert_eq!(declared("x11-libs/gtk+"), "LGPL-2.0-or-later");
    assert_eq!(declared("app-misc/unlicensed"), "NOASSERTION");

    // Each validator must be able to say no, or passing it proves nothing.
    let undeclared = text.replacen(
        "\"licenseDeclared\": \"NOASSERTION\"",
        "\"licenseDeclared\": \"LicenseRef-Undeclared\"",
        1,
    );
    // spdx-tools reads the enum loosely; the schema has only the underscore form (gib once
    // wrote the dash form, and only the schema noticed).
    let dashed_enum = text.replacen("\"OPERATING_SYSTEM\"", "\"OPERATING-SYSTEM\"", 1);
    for (broken, expected) in [(undeclared, (false, true)), (dashed_enum, (true, false))] {
        assert_ne!(broken, text);
        let broken_file = dir.path().join("broken.spdx.json");
        std::fs::write(&broken_file, broken).unwrap();
        assert_eq!(validate(&venv, &broken_file), expected);
    }
}

#[test]
fn usage_report_of_a_root_is_json() {
    let dir = scratch_dir("usage");
    let root = dir.path().join("root");
    synthetic_root(&root);
    std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
    std::fs::write(root.join("usr/lib64/libc.so.6"), vec![0u8; 4096]).unwrap();
    let packages = read_installed(&root).unwrap();
    let report = serde_json::to_value(usage_report(&root, &packages, 1).unwrap()).unwrap();
    assert_eq!(report["largest_files"][0]["path"], "/usr/lib64/libc.so.6");
    assert_eq!(
        report["largest_files"][0]["owner"],
        "sys-libs/glibc-2.40-r5"
    );
    assert_eq!(report["packages"][0]["bytes"], 4096);
}
