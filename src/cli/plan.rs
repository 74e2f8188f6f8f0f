//! `gib plan`: the build order, each image's parent, kind, packages and tags, and the exact
//! Portage files gib would write. Builds nothing and touches no network.
//!
//! `--json` prints one JSON object (schema version 1; keys are only ever added):
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "file": "/abs/path/gib.yaml",
//!   "registry": "registry.example.org/mine" | null,
//!   "stage3": {"source": "flavor", "flavor": "amd64-openrc", "mirror": "https://…", "pin": null}
//!           | {"source": "url", "url": "https://…", "sha512": "…" | null}
//!           | {"source": "path", "path": "/abs/stage3.tar.xz", "sha512": "…" | null}
//!           | null,                                   // only when every image is `rootfs:`
//!   "stage3_by_platform": {"linux/arm64": {"source": "flavor", "flavor": "arm64-openrc", …}},
//!   "trust": {                                         // what signatures and TLS are checked with
//!     "stage3_key": {"fingerprint": "13EB…", "keyring": null, "builtin": true},
//!     "snapshot_key": {"fingerprint": "DCD0…", "keyring": "/abs/team.asc", "builtin": false},
//!     "ca_certificates": {"stage3": "/abs/ca.pem", "portage": …, "repository mine": …,
//!                         "registry host:5000": …}  // only those gib.yaml names
//!   },
//!   "lock": {"path": "/abs/gib.lock",                  // what gib.lock pins
//!            "lock": {"version": 1, "gib": "0.1.0",
//!                     "stage3": {"source": "…", "file": "…", "build": "…" | null,
//!                                "sha512": "…", "signed_by": "…" | null} | null,
//!                     "repositories": [{"name": "gentoo", "source": "git https://…",
//!                                       "revision": "…" | null, "snapshot": "20261120" | null,
//!                                       "time": 1763596800 | null}],
//!                     "platforms": {"arm64": {"stage3": …, "repositories": […]}}}
//!                                                      // only with `platforms:`: what the
//!                                                      // other architectures pin apart
//!                   | null,                            // before the first build
//!            "unlocked": ["stage3", "gentoo"],         // not pinned for what gib.yaml says
//!            "unlocked_by_platform": {"linux/amd64": [], "linux/arm64": ["stage3"]}},
//!   "sandbox": "as root on host uids 100000..165535 …", // the host ids builds run as
//!   "order": ["base", "python", "app"],                // build order, parents first
//!   "platforms": ["linux/amd64", "linux/arm64"],       // every image's, for a CI matrix
//!   "images": [                                        // in build order
//!     {
//!       "name": "python",
//!       "from": "base",                                // as written: scratch | image | reference
//!       "from_kind": "scratch" | "image" | "registry",
//!       "depends_on": ["base"],                        // images of this file built first
//!       "level": 1,                                    // 0 without a parent in this file, else
//!                                                      // its parent's + 1 (CI matrix stages)
//!       "kind": "packages" | "script" | "packages+script" | "files" | "rootfs",
//!       "packages": ["dev-lang/python"],
//!       "builder_packages": ["dev-lang/go"],          // emerged into the builder only
//!       "script": "/abs/build.sh" | null,
//!       "context": "/abs/src" | null,                  // bound read-only at $GIB_CONTEXT
//!       "rootfs": "/abs/tree" | null,
//!       "tag_rule": {"rule": "explicit", "tag": "3.12"}
//!                 | {"rule": "package-version", "package": "python"}
//!                 | {"rule": "snapshot-date"},
//!       "latest": false,
//!       "tags": ["3.12"],                              // the tags known before building
//!       "references": ["registry.example.org/mine/python:3.12"],  // for those tags
//!       "runtime": {"entrypoint": […] | null, "cmd": […] | null, "env": {…}, "user": … | null,
//!                   "workdir": … | null, "labels": {…}, "expose": ["8080/tcp"], "volumes": […]},
//!       "test": "python3 -c 'print(42)'" | null,
//!       "platforms": ["linux/amd64", "linux/arm64"],   // `platforms:`, else the host's
//!       "portage": {                                   // path in the builder -> exact text
//!         "/etc/portage/make.conf": "…",               // appended to the stage3's make.conf
//!         "/etc/portage/package.use/zz-gib": "…",
//!         "/etc/portage/package.accept_keywords/zz-gib": "…",
//!         "/etc/portage/package.license/zz-gib": "…",
//!         "/etc/portage/repos.conf/zz-gib.conf": "…"
//!       }
//!     }
//!   ]
//! }
//! ```
//!
//! With a `package-version` or `snapshot-date` rule the version tag is only known after the
//! build, so `tags` and `references` then hold `latest` alone (or nothing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use super::PlanArgs;
use crate::config::{self, Parent, Stage3};
use crate::plan::{ImagePlan, Plan, Runtime, TagRule};

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&args.config.file)?;
    let plan = Plan::resolve(&config, &args.images)?;
    if let Some(engine) = args.emit {
        print!("{}", super::emit::workflow(&plan, engine)?);
        return Ok(ExitCode::SUCCESS);
    }
    let sandbox = crate::sandbox::id_mode()?.describe();
    let trust = TrustJson::new(&plan, &config.registries);
    let lock = crate::build::lock_status(&plan)?;
    if args.json {
        let mut json = PlanJson::new(&plan, trust);
        json.sandbox = sandbox;
        json.lock = Some(&lock);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        let mut text = render_text(&plan, &trust, &sandbox);
        // The inputs gib.lock pins, after what gib.yaml asks for.
        let at = text.find("sandbox: ").unwrap_or(text.len());
        text.insert_str(at, &lock_text(&lock));
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct PlanJson<'a> {
    schema_version: u32,
    file: String,
    registry: Option<&'a str>,
    stage3: Option<Stage3Json<'a>>,
    /// Platform -> the stage3 it builds in.
    stage3_by_platform: BTreeMap<String, Stage3Json<'a>>,
    trust: TrustJson<'a>,
    /// gib.lock: its path, what it pins (`null` before the first build) and the inputs it
    /// does not pin for what gib.yaml says.
    lock: Option<&'a crate::build::LockStatus>,
    sandbox: String,
    order: Vec<&'a str>,
    platforms: Vec<String>,
    images: Vec<ImageJson<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
enum Stage3Json<'a> {
    Flavor {
        flavor: &'a str,
        mirror: &'a str,
        pin: Option<&'a str>,
    },
    Url {
        url: &'a str,
        sha512: Option<&'a str>,
    },
    Path {
        path: String,
        sha512: Option<&'a str>,
    },
}

#[derive(Serialize)]
struct ImageJson<'a> {
    name: &'a str,
    from: &'a str,
    from_kind: &'static str,
    depends_on: Vec<&'a str>,
    level: usize,
    kind: &'static str,
    packages: &'a [String],
    builder_packages: &'a [String],
    script: Option<String>,
    context: Option<String>,
    rootfs: Option<String>,
    tag_rule: TagRuleJson<'a>,
    latest: bool,
    tags: Vec<String>,
    references: Vec<String>,
    runtime: RuntimeJson<'a>,
    test: Option<&'a str>,
    platforms: Vec<String>,
    portage: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
enum TagRuleJson<'a> {
    Explicit { tag: &'a str },
    PackageVersion { package: &'a str },
    SnapshotDate,
}

#[derive(Serialize)]
struct RuntimeJson<'a> {
    entrypoint: Option<&'a [String]>,
    cmd: Option<&'a [String]>,
    env: &'a BTreeMap<String, String>,
    user: Option<&'a str>,
    workdir: Option<&'a str>,
    labels: &'a BTreeMap<String, String>,
    expose: &'a [String],
    volumes: &'a [String],
}

/// What gib trusts, from gib.yaml (Gentoo's pinned keys unless it names others).
#[derive(Serialize)]
struct TrustJson<'a> {
    stage3_key: KeyJson<'a>,
    snapshot_key: KeyJson<'a>,
    /// `stage3`, `portage`, `repository <name>`, `registry <host>`: the CA certificates
    /// gib.yaml names, each trusted besides the system roots for that host.
    ca_certificates: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct KeyJson<'a> {
    fingerprint: &'a str,
    keyring: Option<String>,
    builtin: bool,
}

impl<'a> KeyJson<'a> {
    fn new(key: &'a crate::config::TrustedKey) -> Self {
        KeyJson {
            fingerprint: &key.fingerprint,
            keyring: key.keyring.as_ref().map(|k| k.display().to_string()),
            builtin: key.is_builtin(),
        }
    }

    fn text(&self, builtin_name: &str) -> String {
        match (&self.keyring, self.builtin) {
            (_, true) => format!("{} ({builtin_name}, pinned in gib)", self.fingerprint),
            (Some(keyring), false) => format!("{} from {keyring} (gib.yaml)", self.fingerprint),
            (None, false) => format!("{} from the keyserver (gib.yaml)", self.fingerprint),
        }
    }
}

impl<'a> TrustJson<'a> {
    fn new(plan: &'a Plan, registries: &BTreeMap<String, crate::config::RegistrySettings>) -> Self {
        let shown = |p: &std::path::Path| p.display().to_string();
        let mut ca_certificates = BTreeMap::new();
        let named = [
            ("stage3".to_string(), &plan.trust.stage3_ca_certificate),
            ("portage".to_string(), &plan.portage.ca_certificate),
        ]
        .into_iter()
        .chain(
            plan.repositories
                .iter()
                .map(|r| (format!("repository {}", r.name), &r.ca_certificate)),
        )
        .chain(
            registries
                .iter()
                .map(|(host, r)| (format!("registry {host}"), &r.ca_certificate)),
        );
        for (what, ca) in named {
            if let Some(ca) = ca {
                ca_certificates.insert(what, shown(ca));
            }
        }
        TrustJson {
            stage3_key: KeyJson::new(&plan.trust.releng),
            snapshot_key: KeyJson::new(&plan.trust.snapshots),
            ca_certificates,
        }
    }
}

impl<'a> Stage3Json<'a> {
    fn new(stage3: &'a Stage3) -> Self {
        match stage3 {
            Stage3::Flavor {
                flavor,
                mirror,
                pin,
            } => Stage3Json::Flavor {
                flavor,
                mirror,
                pin: pin.as_deref(),
            },
            Stage3::Url { url, sha512 } => Stage3Json::Url {
                url,
                sha512: sha512.as_deref(),
            },
            Stage3::Path { path, sha512 } => Stage3Json::Path {
                path: path.display().to_string(),
                sha512: sha512.as_deref(),
            },
        }
    }
}

impl<'a> PlanJson<'a> {
    fn new(plan: &'a Plan, trust: TrustJson<'a>) -> Self {
        PlanJson {
            schema_version: 1,
            file: plan.file.display().to_string(),
            registry: plan.registry.as_deref(),
            stage3: plan.stage3.as_ref().map(Stage3Json::new),
            stage3_by_platform: plan
                .stage3_by_platform
                .iter()
                .map(|(platform, stage3)| (platform.to_string(), Stage3Json::new(stage3)))
                .collect(),
            trust,
            lock: None,
            sandbox: String::new(),
            order: plan.order(),
            platforms: plan_platforms(plan),
            images: {
                // Parents come first in the plan, so a parent's level is known before its
                // children's.
                let mut levels: BTreeMap<&str, usize> = BTreeMap::new();
                plan.images
                    .iter()
                    .map(|image| {
                        let level = image
                            .depends_on()
                            .and_then(|parent| levels.get(parent))
                            .map_or(0, |l| l + 1);
                        levels.insert(&image.name, level);
                        ImageJson::new(image, level)
                    })
                    .collect()
            },
        }
    }
}

impl<'a> ImageJson<'a> {
    fn new(image: &'a ImagePlan, level: usize) -> Self {
        let (from, from_kind) = parent_text(&image.parent);
        let tags = known_tags(image);
        let references = tags.iter().map(|t| image.reference(t)).collect();
        let shown = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let (builder_packages, script, context, rootfs) = match &image.kind {
            crate::plan::BuildKind::Portage(work) => (
                work.builder_packages.as_slice(),
                shown(&work.script),
                shown(&work.context),
                None,
            ),
            crate::plan::BuildKind::Rootfs(path) => {
                (&[][..], None, None, Some(path.display().to_string()))
            }
        };
        ImageJson {
            name: &image.name,
            from,
            from_kind,
            depends_on: image.depends_on().into_iter().collect(),
            level,
            kind: image.kind.label(),
            packages: image.kind.packages(),
            builder_packages,
            script,
            context,
            rootfs,
            tag_rule: match &image.tag_rule {
                TagRule::Explicit(tag) => TagRuleJson::Explicit { tag },
                TagRule::PackageVersion { package } => TagRuleJson::PackageVersion { package },
                TagRule::SnapshotDate => TagRuleJson::SnapshotDate,
            },
            latest: image.latest,
            tags,
            references,
            runtime: RuntimeJson::new(&image.runtime),
            test: image.test.as_ref().map(|t| t.command.as_str()),
            platforms: image.platforms.iter().map(ToString::to_string).collect(),
            portage: image
                .portage
                .files()
                .into_iter()
                .map(|(path, text, _)| (path, text))
                .collect(),
        }
    }
}

impl<'a> RuntimeJson<'a> {
    fn new(runtime: &'a Runtime) -> Self {
        RuntimeJson {
            entrypoint: runtime.entrypoint.as_deref(),
            cmd: runtime.cmd.as_deref(),
            env: &runtime.env,
            user: runtime.user.as_deref(),
            workdir: runtime.workdir.as_deref(),
            labels: &runtime.labels,
            expose: &runtime.expose,
            volumes: &runtime.volumes,
        }
    }
}

/// Every platform some image is built for, in the order first named.
fn plan_platforms(plan: &Plan) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for platform in plan.images.iter().flat_map(|i| &i.platforms) {
        let name = platform.to_string();
        if !all.contains(&name) {
            all.push(name);
        }
    }
    all
}

fn parent_text(parent: &Parent) -> (&str, &'static str) {
    match parent {
        Parent::Scratch => ("scratch", "scratch"),
        Parent::Image(name) => (name, "image"),
        Parent::Registry(reference) => (reference, "registry"),
    }
}

/// The tags known before building: an explicit tag, and `latest` where it applies.
fn known_tags(image: &ImagePlan) -> Vec<String> {
    match image.known_tag() {
        Some(tag) => image.tags(tag),
        None if image.latest => vec!["latest".to_string()],
        None => Vec::new(),
    }
}

/// The tag rule in words, and the version tag as shown in `tags:` (`<tag>` until built).
fn tag_rule_text(image: &ImagePlan) -> (String, String) {
    match &image.tag_rule {
        TagRule::Explicit(tag) => (format!("{tag} (tag:)"), tag.clone()),
        TagRule::PackageVersion { package } => (
            format!(
                "the version of the installed package `{package}`, else the repository snapshot date"
            ),
            "<tag>".to_string(),
        ),
        TagRule::SnapshotDate => (
            "the repository snapshot date".to_string(),
            "<tag>".to_string(),
        ),
    }
}

/// The `locked:` lines of the text plan.
fn lock_text(status: &crate::build::LockStatus) -> String {
    let mut out = String::new();
    let Some(lock) = &status.lock else {
        let _ = writeln!(
            out,
            "locked: nothing yet ({} is written by the first build)",
            status.path.display()
        );
        return out;
    };
    let _ = writeln!(out, "locked in {}:", status.path.display());
    if let Some(stage3) = &lock.stage3 {
        let _ = writeln!(out, "  stage3: {}", stage3.short());
    }
    for repo in &lock.repositories {
        let _ = writeln!(out, "  repository {}: {}", repo.name, repo.short());
    }
    for (arch, own) in &lock.platforms {
        if let Some(stage3) = &own.stage3 {
            let _ = writeln!(out, "  {}: stage3: {}", arch.as_str(), stage3.short());
        }
        for repo in &own.repositories {
            let _ = writeln!(
                out,
                "  {}: repository {}: {}",
                arch.as_str(),
                repo.name,
                repo.short()
            );
        }
    }
    if status.unlocked_by_platform.len() > 1 {
        for (platform, unlocked) in &status.unlocked_by_platform {
            if !unlocked.is_empty() {
                let _ = writeln!(
                    out,
                    "  not locked for {platform} (its next build resolves them): {}",
                    unlocked.join(", ")
                );
            }
        }
    } else if !status.unlocked.is_empty() {
        let _ = writeln!(
            out,
            "  not locked for what gib.yaml says (the next build resolves them): {}",
            status.unlocked.join(", ")
        );
    }
    out
}

fn render_text(plan: &Plan, trust: &TrustJson<'_>, sandbox: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "Plan for {}", plan.file.display());
    match &plan.stage3 {
        Some(Stage3::Flavor {
            flavor,
            mirror,
            pin,
        }) => {
            let build = pin.as_deref().unwrap_or("latest build");
            let _ = writeln!(out, "stage3: {flavor} ({build}) from {mirror}");
        }
        Some(Stage3::Url { url, .. }) => {
            let _ = writeln!(out, "stage3: {url}");
        }
        Some(Stage3::Path { path, .. }) => {
            let _ = writeln!(out, "stage3: {}", path.display());
        }
        None => {
            let _ = writeln!(out, "stage3: none (every image is a rootfs image)");
        }
    }
    if plan.stage3_by_platform.len() > 1 {
        for (platform, stage3) in &plan.stage3_by_platform {
            let source = match stage3 {
                Stage3::Flavor { flavor, .. } => flavor.clone(),
                Stage3::Url { url, .. } => url.clone(),
                Stage3::Path { path, .. } => path.display().to_string(),
            };
            let _ = writeln!(out, "stage3 for {platform}: {source}");
        }
    }
    let _ = writeln!(
        out,
        "stage3 key: {}",
        trust.stage3_key.text("Gentoo Release Engineering")
    );
    let _ = writeln!(
        out,
        "snapshot key: {}",
        trust.snapshot_key.text("Gentoo infrastructure")
    );
    for (what, ca) in &trust.ca_certificates {
        let _ = writeln!(
            out,
            "CA certificate for {what}: {ca} (besides the system roots)"
        );
    }
    let _ = writeln!(out, "sandbox: {sandbox}");
    let _ = writeln!(out, "order: {}", plan.order().join(" -> "));
    let _ = writeln!(out, "platforms: {}", plan_platforms(plan).join(", "));
    for image in &plan.images {
        let _ = writeln!(out, "\n{}", image.name);
        let (from, kind) = parent_text(&image.parent);
        let from = match kind {
            "registry" => format!("{from} (registry)"),
            _ => from.to_string(),
        };
        let _ = writeln!(out, "  from:       {from}");
        let _ = writeln!(out, "  kind:       {}", image.kind.label());
        let platforms: Vec<String> = image.platforms.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "  platforms:  {}", platforms.join(", "));
        match &image.kind {
            crate::plan::BuildKind::Portage(work) => {
                if !work.packages.is_empty() {
                    let _ = writeln!(out, "  packages:   {}", work.packages.join(" "));
                }
                if !work.builder_packages.is_empty() {
                    let _ = writeln!(
                        out,
                        "  builder:    {} (emerged into the builder only)",
                        work.builder_packages.join(" ")
                    );
                }
                if let Some(script) = &work.script {
                    let _ = writeln!(out, "  script:     {}", script.display());
                }
                if let Some(context) = &work.context {
                    let _ = writeln!(out, "  context:    {}", context.display());
                }
            }
            crate::plan::BuildKind::Rootfs(path) => {
                let _ = writeln!(out, "  rootfs:     {}", path.display());
            }
        }
        let (rule, version_tag) = tag_rule_text(image);
        let _ = writeln!(out, "  tag:        {rule}");
        let tags = image.tags(&version_tag);
        let _ = writeln!(out, "  tags:       {}", tags.join(", "));
        let references: Vec<String> = tags.iter().map(|t| image.reference(t)).collect();
        let _ = writeln!(out, "  references: {}", references.join(", "));
        if let Some(test) = &image.test {
            let user = image.runtime.user.as_deref().unwrap_or("root");
            let _ = writeln!(out, "  test:       {} (as {user})", test.command.trim());
            if let Some(syntax) = test.shell_syntax {
                let _ = writeln!(
                    out,
                    "              needs /bin/sh in the image: it uses {syntax}"
                );
            }
        }
    }
    let all_same = plan
        .images
        .windows(2)
        .all(|pair| pair[0].portage == pair[1].portage);
    match plan.images.first() {
        Some(first) if all_same => {
            let _ = writeln!(out, "\nPortage files (the same for every image):");
            render_portage(&mut out, first);
        }
        _ => {
            for image in &plan.images {
                let _ = writeln!(out, "\nPortage files for {}:", image.name);
                render_portage(&mut out, image);
            }
        }
    }
    out
}

fn render_portage(out: &mut String, image: &ImagePlan) {
    for (path, text, appended) in image.portage.files() {
        let how = if appended {
            " (appended to the stage3's)"
        } else {
            ""
        };
        let _ = writeln!(out, "==> {path}{how} <==");
        out.push_str(text.trim_start_matches('\n'));
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
}
