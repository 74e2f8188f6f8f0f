//! `gib plan --emit github|gitlab|argo`: the workflows validate against their engines' own
//! schemas and models (check-jsonschema's built-in GitHub and GitLab schemas; hera's Argo
//! Workflow model, from PyPI), and their `needs` mirror the image DAG exactly.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::reference::validate;
use crate::util::{gib, pypi_venv, run_ok, scratch_dir};

const HERA: &str = "hera==5.27.0";

/// A wide DAG: a base, four children, two grandchildren, and an image on a registry parent.
fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("gib.yaml");
    fs::write(
        &path,
        // Two platforms: the GitHub jobs of arm64 images register qemu (validated too).
        "stage3:\n  flavor: amd64-openrc\nregistry: registry.example.org/team\n\
         platforms: [linux/amd64, linux/arm64]\nimages:\n  \
         base: {packages: sys-libs/glibc}\n  \
         py: {from: base, packages: dev-lang/python}\n  \
         go: {from: base, packages: dev-lang/go}\n  \
         web: {from: base, packages: www-servers/nginx}\n  \
         db: {from: base, packages: dev-db/redis, platforms: [linux/amd64]}\n  \
         app: {from: py, packages: app-misc/greet}\n  \
         api: {from: go, packages: app-misc/hello}\n  \
         ext: {from: 'registry.example.org/other/base:1', packages: app-misc/greet}\n",
    )
    .unwrap();
    path
}

fn emit(config: &Path, engine: &str, dir: &Path) -> PathBuf {
    let out = run_ok(gib().args(["plan", "--emit", engine, "-f"]).arg(config));
    let file = dir.join(format!("{engine}.yml"));
    fs::write(&file, out).unwrap();
    file
}

/// Image name → the images of the file it depends on, from `gib plan --json`.
fn dag(config: &Path) -> BTreeMap<String, Vec<String>> {
    let plan: Value =
        serde_json::from_str(&run_ok(gib().args(["plan", "--json", "-f"]).arg(config))).unwrap();
    plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let needs = image["depends_on"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| format!("image-{}", n.as_str().unwrap()))
                .collect();
            (format!("image-{}", image["name"].as_str().unwrap()), needs)
        })
        .collect()
}

fn yaml(file: &Path) -> Value {
    serde_saphyr::from_str(&fs::read_to_string(file).unwrap()).unwrap()
}

#[test]
fn workflows_validate_and_their_needs_mirror_the_dag() {
    let dir = scratch_dir("emit");
    let config = write_config(dir.path());
    let dag = dag(&config);
    assert_eq!(dag.len(), 8);

    let github = emit(&config, "github", dir.path());
    let out = validate(
        &["--builtin-schema", "vendor.github-workflows"],
        std::slice::from_ref(&github),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let jobs = &yaml(&github)["jobs"];
    for (job, needs) in &dag {
        let mut expected = vec!["gib".to_string()];
        expected.extend(needs.iter().cloned());
        let got: Vec<String> = serde_json::from_value(jobs[job]["needs"].clone()).unwrap();
        assert_eq!(got, expected, "github {job}");
        let run = jobs[job]["steps"].as_array().unwrap().last().unwrap()["run"]
            .as_str()
            .unwrap()
            .to_string();
        let image = job.strip_prefix("image-").unwrap();
        assert!(
            run.contains(&format!(
                "build {image} --parents-from-registry --push --locked"
            )),
            "{run}"
        );
    }

    let gitlab = emit(&config, "gitlab", dir.path());
    let out = validate(
        &["--builtin-schema", "vendor.gitlab-ci"],
        std::slice::from_ref(&gitlab),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pipeline = yaml(&gitlab);
    let jobs: Vec<&String> = pipeline
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("image-"))
        .collect();
    assert_eq!(jobs.len(), dag.len(), "one job per image");
    for (job, needs) in &dag {
        let got: Vec<String> = pipeline[job]["needs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["job"].as_str().unwrap().to_string())
            .filter(|n| n != "gib")
            .collect();
        assert_eq!(&got, needs, "gitlab {job}");
    }

    let argo = emit(&config, "argo", dir.path());
    let venv = pypi_venv(&HERA.replace("==", "-"), &[HERA, "pyyaml"]);
    const LOAD: &str = "import sys, yaml\n\
        from hera.workflows.models import Workflow\n\
        w = Workflow.parse_obj(yaml.safe_load(open(sys.argv[1])))\n\
        for t in w.spec.templates[0].dag.tasks:\n    print(t.name, ' '.join(t.dependencies or []))\n";
    let loaded = run_ok(
        Command::new(venv.join("bin/python"))
            .args(["-c", LOAD])
            .arg(&argo),
    );
    let tasks: BTreeMap<String, Vec<String>> = loaded
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace().map(String::from);
            (words.next().unwrap(), words.collect())
        })
        .collect();
    assert_eq!(tasks, dag, "argo's dag is gib's");

    // The models refuse a broken workflow, so the check can fail.
    let broken = dir.path().join("broken.yml");
    fs::write(
        &broken,
        fs::read_to_string(&argo)
            .unwrap()
            .replace("dependencies:", "dependencies: 7\n        x:"),
    )
    .unwrap();
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", LOAD])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken workflow loaded");
}
