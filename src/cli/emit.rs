//! `gib plan --emit github|gitlab|argo`: the plan as a CI workflow with one job per image,
//! each needing its parent's job (an image whose parent is no image of this file needs
//! none), so every image starts as soon as its parent is pushed. Each job runs
//! `gib build IMAGE --parents-from-registry --push --locked`: it pulls its ancestors from the
//! registry rather than building them, and builds what the committed gib.lock names.
//!
//! Wired the way each engine expects: GitHub Actions and GitLab CI build gib once in a first
//! job and hand the binary on as an artifact, keep binary packages and distfiles in the
//! engine's cache, and log in to the registry with the engine's secrets; Argo runs each step
//! in a container image that holds gib (a parameter) with the registry credentials of a
//! Secret.

use serde_json::{Map, Value, json};

use crate::config::Parent;
use crate::plan::Plan;

/// The engines `--emit` writes for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Github,
    Gitlab,
    Argo,
}

/// The workflow for `plan` as YAML text.
pub fn workflow(plan: &Plan, engine: Engine) -> anyhow::Result<String> {
    let document = match engine {
        Engine::Github => github(plan),
        Engine::Gitlab => gitlab(plan),
        Engine::Argo => argo(plan),
    };
    let header = format!(
        "# Written by `gib plan --emit {}` from {}: one job per image, each after its parent's.\n\
         # Commit gib.lock (each job builds with --locked). Regenerate it when the images change.\n",
        match engine {
            Engine::Github => "github",
            Engine::Gitlab => "gitlab",
            Engine::Argo => "argo",
        },
        plan.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    Ok(format!("{header}{}", serde_saphyr::to_string(&document)?))
}

/// A job name engines accept (letters, digits, `-`, `_`): `image-<name>`.
fn job_name(image: &str) -> String {
    let safe: String = image
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("image-{safe}")
}

/// The image of this file `image` builds on, if any.
fn parent_in_file<'p>(plan: &'p Plan, image: &'p crate::plan::ImagePlan) -> Option<&'p str> {
    match &image.parent {
        Parent::Image(name) if plan.images.iter().any(|i| &i.name == name) => Some(name),
        _ => None,
    }
}

/// The `gib build` of one image's job.
fn build_command(gib: &str, image: &str, cache: Option<&str>) -> String {
    let cache = cache
        .map(|c| format!(" --cache-dir {c}"))
        .unwrap_or_default();
    format!("{gib} build {image} --parents-from-registry --push --locked --progress plain{cache}")
}

/// Rootless gib needs user namespaces (which Ubuntu 24.04 restricts) and a subordinate range.
const RUNNER_SETUP: &str = "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0\n\
     grep -q \"^$USER:\" /etc/subuid || sudo usermod --add-subuids 100000-165535 \
     --add-subgids 100000-165535 \"$USER\"\n";

fn github(plan: &Plan) -> Value {
    let mut jobs = Map::new();
    jobs.insert(
        "gib".into(),
        json!({
            "runs-on": "ubuntu-24.04",
            "steps": [
                {"run": "rustup toolchain install stable --profile minimal"},
                {"run": "cargo +stable install --locked --root \"$RUNNER_TEMP/gib\" --git \"$TOOL_GIT_URL\" gib"},
                {"uses": "actions/upload-artifact@v4",
                 "with": {"name": "gib", "path": "${{ runner.temp }}/gib/bin/gib"}},
            ],
        }),
    );
    for image in &plan.images {
        let mut needs = vec![Value::from("gib")];
        if let Some(parent) = parent_in_file(plan, image) {
            needs.push(job_name(parent).into());
        }
        let mut steps = vec![
            json!({"uses": "actions/checkout@v4"}),
            json!({"uses": "actions/download-artifact@v4",
                   "with": {"name": "gib", "path": "${{ runner.temp }}/gib"}}),
            json!({"run": "chmod +x \"$RUNNER_TEMP/gib/gib\""}),
            json!({"run": RUNNER_SETUP}),
        ];
        // The runners are amd64: another platform's leg runs under qemu-user, which
        // setup-qemu-action registers with binfmt_misc's F flag (what gib checks for).
        let foreign: Vec<&str> = image
            .platforms
            .iter()
            .filter(|p| p.architecture != "amd64")
            .map(|p| p.architecture.as_str())
            .collect();
        if !foreign.is_empty() {
            steps.push(json!({"uses": "docker/setup-qemu-action@v3",
                              "with": {"platforms": foreign.join(",")}}));
        }
        steps.extend([
            json!({"uses": "actions/cache@v4",
            "with": {
                "path": "~/.cache/gib/binpkgs\n~/.cache/gib/binpkgs-*\n~/.cache/gib/distfiles\n",
                "key": format!("gib-{}-${{{{ hashFiles('gib.lock') }}}}", image.name),
                "restore-keys": format!("gib-{}-", image.name),
            }}),
            json!({"uses": "docker/login-action@v3",
            "with": {
                "registry": "${{ env.REGISTRY }}",
                "username": "${{ secrets.REGISTRY_USER }}",
                "password": "${{ secrets.REGISTRY_PASSWORD }}",
            }}),
            json!({"run": build_command("\"$RUNNER_TEMP/gib/gib\"", &image.name, None)}),
        ]);
        jobs.insert(
            job_name(&image.name),
            json!({
                "needs": needs,
                "runs-on": "ubuntu-24.04",
                "steps": steps,
            }),
        );
    }
    json!({
        "name": "images",
        "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
        "env": {
            // Where gib's sources are, and the host of gib.yaml's `registry:`.
            "TOOL_GIT_URL": "https://git.example.org/gib.git",
            "REGISTRY": plan.registry.as_deref().and_then(|r| r.split('/').next()).unwrap_or("registry.example.org"),
        },
        "jobs": jobs,
    })
}

fn gitlab(plan: &Plan) -> Value {
    let mut document = Map::new();
    document.insert(
        "variables".into(),
        json!({"TOOL_GIT_URL": "https://git.example.org/gib.git"}),
    );
    document.insert(
        "gib".into(),
        json!({
            "image": "rust:1-bookworm",
            "script": ["cargo install --locked --root .gib --git \"$TOOL_GIT_URL\" gib"],
            "artifacts": {"paths": [".gib/bin/gib"]},
        }),
    );
    for image in &plan.images {
        let mut needs = vec![json!({"job": "gib", "artifacts": true})];
        if let Some(parent) = parent_in_file(plan, image) {
            needs.push(json!({"job": job_name(parent), "artifacts": false}));
        }
        document.insert(
            job_name(&image.name),
            json!({
                "needs": needs,
                // A runner whose jobs may create user namespaces (see gib's README).
                "tags": ["gib"],
                "cache": {"key": format!("gib-{}", image.name),
                          "paths": [".gib-cache/binpkgs", ".gib-cache/distfiles"]},
                "script": [
                    "mkdir -p ~/.docker && printf '{\"auths\":{\"%s\":{\"auth\":\"%s\"}}}' \"$CI_REGISTRY\" \"$(printf '%s:%s' \"$CI_REGISTRY_USER\" \"$CI_REGISTRY_PASSWORD\" | base64 -w0)\" > ~/.docker/config.json",
                    build_command(".gib/bin/gib", &image.name, Some(".gib-cache")),
                ],
            }),
        );
    }
    Value::Object(document)
}

fn argo(plan: &Plan) -> Value {
    let tasks: Vec<Value> = plan
        .images
        .iter()
        .map(|image| {
            let mut task = json!({
                "name": job_name(&image.name),
                "template": "gib-build",
                "arguments": {"parameters": [{"name": "image", "value": image.name}]},
            });
            if let Some(parent) = parent_in_file(plan, image) {
                task["dependencies"] = json!([job_name(parent)]);
            }
            task
        })
        .collect();
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "gib-images-"},
        "spec": {
            "entrypoint": "images",
            "arguments": {"parameters": [
                // A container image holding gib, its tools (uidmap) and this checkout.
                {"name": "gib-image", "value": "registry.example.org/gib:latest"},
            ]},
            "templates": [
                {"name": "images", "dag": {"tasks": tasks}},
                {
                    "name": "gib-build",
                    "inputs": {"parameters": [{"name": "image"}]},
                    "container": {
                        "image": "{{workflow.parameters.gib-image}}",
                        "command": ["gib"],
                        "args": ["build", "{{inputs.parameters.image}}", "--parents-from-registry",
                                 "--push", "--locked", "--progress", "plain"],
                        "env": [{"name": "REGISTRY_AUTH_FILE", "value": "/run/gib/auth/config.json"}],
                        "volumeMounts": [{"name": "registry-auth", "mountPath": "/run/gib/auth", "readOnly": true}],
                        // gib makes its own user namespaces.
                        "securityContext": {"privileged": true},
                    },
                    "volumes": [{"name": "registry-auth",
                                 "secret": {"secretName": "gib-registry-auth",
                                            "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}],
                },
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gib.yaml");
        std::fs::write(
            &path,
            "stage3:\n  flavor: amd64-openrc\nregistry: registry.example.org/team\nimages:\n  \
             base: {packages: sys-libs/glibc}\n  a.b: {from: base, packages: x/a}\n  \
             c: {from: a.b, packages: x/c}\n  d: {from: 'registry.example.org/x/y:1', packages: x/d}\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap();
        Plan::resolve(&config, &[]).unwrap()
    }

    #[test]
    fn a_job_of_another_platform_registers_qemu_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gib.yaml");
        std::fs::write(
            &path,
            "stage3:\n  flavor: amd64-openrc\nplatforms: [linux/amd64, linux/arm64]\nimages:\n  \
             base: {packages: sys-libs/glibc}\n  host: {from: base, packages: x/a, platforms: [linux/amd64]}\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap();
        let github = github(&Plan::resolve(&config, &[]).unwrap());
        let qemu = |job: &str| -> Vec<Value> {
            github["jobs"][job]["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["uses"] == "docker/setup-qemu-action@v3")
                .cloned()
                .collect()
        };
        assert_eq!(
            qemu("image-base"),
            [json!({"uses": "docker/setup-qemu-action@v3", "with": {"platforms": "arm64"}})]
        );
        assert!(qemu("image-host").is_empty());
        let steps = github["jobs"]["image-base"]["steps"].as_array().unwrap();
        let at = |uses: &str| steps.iter().position(|s| s["uses"] == uses).unwrap();
        assert!(
            at("docker/setup-qemu-action@v3") < steps.len() - 1,
            "qemu before the build"
        );
    }

    #[test]
    fn every_image_is_a_job_that_needs_its_parents() {
        let plan = plan();
        let github = github(&plan);
        assert_eq!(
            github["jobs"]["image-a-b"]["needs"],
            json!(["gib", "image-base"])
        );
        assert_eq!(
            github["jobs"]["image-c"]["needs"],
            json!(["gib", "image-a-b"])
        );
        assert_eq!(
            github["jobs"]["image-d"]["needs"],
            json!(["gib"]),
            "a registry parent"
        );
        assert_eq!(github["env"]["REGISTRY"], "registry.example.org");
        let gitlab = gitlab(&plan);
        assert_eq!(
            gitlab["image-c"]["needs"][1],
            json!({"job": "image-a-b", "artifacts": false})
        );
        let argo = argo(&plan);
        let tasks = &argo["spec"]["templates"][0]["dag"]["tasks"];
        assert_eq!(tasks.as_array().unwrap().len(), 4);
        assert!(
            tasks
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == "image-c" && t["dependencies"] == json!(["image-a-b"]))
        );
        let text = workflow(&plan, Engine::Gitlab).unwrap();
        assert!(
            text.starts_with("# Written by `gib plan --emit gitlab`"),
            "{text}"
        );
        assert!(
            text.contains("--parents-from-registry --push --locked"),
            "{text}"
        );
    }
}
