//! Build provenance: each image's in-toto statement is in the OCI layout beside the image,
//! parses and validates with in-toto's own Python bindings (the Statement and the SLSA v1
//! Provenance protos, strictly: an unknown field or a bad timestamp fails), and names what
//! the image was built from — gib.yaml's digest, the stage3's SHA-512, the overlay's commit,
//! the parent's digest — and when; with SOURCE_DATE_EPOCH set, two builds write it alike.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest;

use crate::fixture::mini_stage3;
use crate::lock::commit_overlay;
use crate::quality::{blob, read_json};
use crate::util::{
    Runner, build_with, gib, gib_by, pypi_venv, require_tool, run_ok, scratch_dir, work_dir,
};

/// The in-toto Python bindings the statements are checked with.
const IN_TOTO_ATTESTATION: &str = "in-toto-attestation==0.9.3";
const MEDIA_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";

/// Checks each statement file given: `ParseDict` into the protos refuses unknown fields and
/// mistyped values; the wrappers' `validate` and SLSA v1's required fields do the rest.
const VALIDATOR: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

for path in sys.argv[1:]:
    with open(path) as f:
        doc = json.load(f)
    statement = json_format.ParseDict(doc, statement_pb2.Statement())
    Statement.copy_from_pb(statement).validate()
    if statement.predicate_type != "https://slsa.dev/provenance/v1":
        raise ValueError(f"{path}: predicateType {statement.predicate_type}")
    provenance = json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    build = provenance.build_definition
    if not build.build_type or not build.external_parameters:
        raise ValueError(f"{path}: buildType and externalParameters are required")
    if not provenance.run_details.builder.id:
        raise ValueError(f"{path}: runDetails.builder.id is required")
    for dependency in build.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    metadata = provenance.run_details.metadata
    if metadata.finished_on.ToSeconds() < metadata.started_on.ToSeconds():
        raise ValueError(f"{path}: finishedOn is before startedOn")
    print("valid", path)
"#;

/// Run in-toto's bindings on `files`.
pub(crate) fn validate_statements(files: &[PathBuf]) -> Output {
    let venv = pypi_venv(
        &IN_TOTO_ATTESTATION.replace("==", "-"),
        &[IN_TOTO_ATTESTATION],
    );
    Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(VALIDATOR)
        .args(files)
        .output()
        .unwrap()
}

/// The layout's image digest of `reference`, and the path of the one in-toto statement
/// whose subject it is (with its artifact manifest's digest).
fn image_and_statement(layout: &Path, reference: &str) -> (String, PathBuf, String) {
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    let image = entries
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("no {reference} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let statements: Vec<(String, PathBuf)> = entries
        .iter()
        .filter(|m| m["artifactType"] == MEDIA_TYPE_IN_TOTO)
        .filter_map(|m| {
            let digest = m["digest"].as_str().unwrap();
            let manifest = read_json(&blob(layout, digest));
            (manifest["subject"]["digest"] == image.as_str()).then(|| {
                assert_eq!(manifest["artifactType"], MEDIA_TYPE_IN_TOTO);
                let layer = &manifest["layers"][0];
                assert_eq!(layer["mediaType"], MEDIA_TYPE_IN_TOTO);
                (
                    digest.to_string(),
                    blob(layout, layer["digest"].as_str().unwrap()),
                )
            })
        })
        .collect();
    assert_eq!(statements.len(), 1, "{reference}: {index}");
    let (artifact, path) = statements.into_iter().next().unwrap();
    (image, path, artifact)
}

fn hex_of<D: Digest>(bytes: &[u8]) -> String {
    hex::encode(D::digest(bytes))
}

/// The resolved dependency named `name`.
fn dependency<'v>(statement: &'v Value, name: &str) -> &'v Value {
    statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no dependency {name} in {statement:#}"))
}

/// Seconds since the epoch of an RFC 3339 time.
fn seconds(text: &Value) -> i64 {
    let text = text.as_str().unwrap();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unix_timestamp()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[test]
fn provenance_names_the_inputs_validates_and_is_in_the_layout() {
    let dir = scratch_dir("provenance");
    let overlay = dir.path().join("overlay");
    let head = commit_overlay(&overlay, "1.0", "provenance");
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/motd"), "files\n").unwrap();
    run_ok(
        Command::new(require_tool("tar"))
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(dir.path().join("tree.tar"))
            .arg("."),
    );
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        format!(
            "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nrepositories:\n  - name: mine\n    \
             sync_type: git\n    uri: file://{overlay}\nbuild:\n  threads: 2\nimages:\n  \
             base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout]\n  \
             demo:\n    from: base\n    tag: t\n    packages: [app-misc/lockdemo]\n  \
             files:\n    from: scratch\n    tag: t\n    rootfs: ./tree.tar\n",
            stage3 = mini_stage3().display(),
            overlay = overlay.display(),
        ),
    )
    .unwrap();
    let layout = dir.path().join("oci");
    let before = now();
    run_ok(
        gib()
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg("-f")
            .arg(&config)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--oci-layout")
            .arg(&layout),
    );
    let after = now();

    let (base, base_file, _) = image_and_statement(&layout, "base:t");
    let (demo, demo_file, _) = image_and_statement(&layout, "demo:t");
    let (files, files_file, _) = image_and_statement(&layout, "files:t");
    let out = validate_statements(&[base_file.clone(), demo_file.clone(), files_file.clone()]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("valid ")
            .count(),
        3
    );

    let statement = read_json(&demo_file);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["subject"][0]["name"], "demo:t");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        demo.trim_start_matches("sha256:")
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], "urn:gib:build-type:image:v1");
    let parameters = &definition["externalParameters"];
    assert_eq!(
        parameters["config"]["digest"]["sha256"],
        hex_of::<sha2::Sha256>(&fs::read(&config).unwrap()).as_str()
    );
    assert_eq!(parameters["image"], "demo");
    assert_eq!(parameters["packages"][0], "app-misc/lockdemo");
    let stage3 = mini_stage3();
    assert_eq!(
        dependency(&statement, &stage3.file_name().unwrap().to_string_lossy())["digest"]["sha512"],
        hex_of::<sha2::Sha512>(&fs::read(&stage3).unwrap()).as_str()
    );
    let mine = dependency(&statement, "repository:mine");
    assert_eq!(mine["digest"]["gitCommit"], head.as_str());
    assert_eq!(mine["annotations"]["role"], "overlay");
    assert_eq!(
        dependency(&statement, "repository:gentoo")["annotations"]["role"],
        "main"
    );
    assert_eq!(
        dependency(&statement, "parent:base:t")["digest"]["sha256"],
        base.trim_start_matches("sha256:")
    );
    let run = &statement["predicate"]["runDetails"];
    assert_eq!(
        run["builder"]["id"],
        format!("urn:gib:builder:gib@{}", env!("CARGO_PKG_VERSION"))
    );
    // The build's own times (SOURCE_DATE_EPOCH is unset).
    let (started, finished) = (
        seconds(&run["metadata"]["startedOn"]),
        seconds(&run["metadata"]["finishedOn"]),
    );
    assert!(
        before <= started && started <= finished && finished <= after,
        "{before} {started} {finished} {after}"
    );

    // A `rootfs:` image names its tarball, and no stage3 or repository.
    let statement = read_json(&files_file);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        files.trim_start_matches("sha256:")
    );
    let definition = &statement["predicate"]["buildDefinition"];
    assert!(
        definition["externalParameters"]["rootfs"]
            .as_str()
            .unwrap()
            .ends_with("tree.tar"),
        "{definition:#}"
    );
    assert_eq!(definition["resolvedDependencies"], Value::Array(Vec::new()));

    // The validator is not a formality: a statement with a time that is no timestamp, or a
    // field SLSA does not have, fails it.
    for (name, broken) in [
        (
            "bad-time.json",
            fs::read_to_string(&demo_file).unwrap().replacen(
                "\"startedOn\": \"",
                "\"startedOn\": \"on ",
                1,
            ),
        ),
        (
            "bad-field.json",
            fs::read_to_string(&demo_file)
                .unwrap()
                .replacen("\"buildType\"", "\"buildKind\"", 1),
        ),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, broken).unwrap();
        let out = validate_statements(&[path]);
        assert!(!out.status.success(), "{name} validated");
    }
}

/// With SOURCE_DATE_EPOCH set, the times are clamped to it, so two builds from empty caches
/// write the same statement (and artifact manifest), by root and by the test user.
#[test]
fn with_source_date_epoch_the_provenance_is_the_same_every_build() {
    const SDE: i64 = 1_700_000_000;
    let mut artifacts = Vec::new();
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "provenance-sde");
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/motd"), "files\n").unwrap();
        let config = dir.path().join("gib.yaml");
        fs::write(
            &config,
            "images:\n  files:\n    from: scratch\n    tag: t\n    rootfs: ./tree\n",
        )
        .unwrap();
        for cache in ["cache-one", "cache-two"] {
            let layout = dir.path().join(format!("oci-{cache}"));
            run_ok(
                build_with(gib_by(runner), &config, &dir.path().join(cache))
                    .env("SOURCE_DATE_EPOCH", SDE.to_string())
                    .arg("--oci-layout")
                    .arg(&layout),
            );
            let (_, file, artifact) = image_and_statement(&layout, "files:t");
            let statement = read_json(&file);
            let metadata = &statement["predicate"]["runDetails"]["metadata"];
            assert_eq!(seconds(&metadata["startedOn"]), SDE);
            assert_eq!(seconds(&metadata["finishedOn"]), SDE);
            artifacts.push(artifact);
        }
        // The image's owners may differ between root and the user: each compares to its own.
        assert_eq!(artifacts[0], artifacts[1], "{runner:?}");
        artifacts.clear();
    }
}
