//! Errors before work: what can be known wrong about a run once it is planned, checked before
//! the cache is opened and before anything is downloaded, unpacked or emerged, so that a
//! mistake costs a second, not a build. The outputs are writable and of the right kind,
//! parents by reference are references, a push has a registry that answers with the
//! credentials, and the sandbox can map the ids a build needs.
//!
//! Not for: what only the build can find out (a package that does not build, a test that
//! fails); the checks of gib.yaml itself (`config`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use super::RunRequest;
use crate::config::Parent;
use crate::oci::spec::Platform;
use crate::plan::Plan;
use crate::printer::{Hint, UserError};
use crate::registry::Reference;

/// Check `request` (planned as `plans`, a leg per platform) before any work.
pub fn check(request: &RunRequest<'_>, plans: &[&Plan]) -> Result<()> {
    if let Some(dir) = &request.outputs.oci_layout {
        check_layout(dir)?;
    }
    if let Some(file) = &request.outputs.archive {
        check_archive(file)?;
    }
    for plan in plans {
        check_parents(request, plan)?;
        // A join builds nothing: no platform's binaries run here.
        if !request.join_index {
            check_platforms(plan)?;
        }
        if request.outputs.push {
            check_push(request, plan)?;
        }
    }
    check_sandbox()
}

/// Parents by reference name a registry image, and with `--parents-from-registry` every
/// ancestor to pull has a registry and a tag known before its build. (Whether the registry
/// has them, the pull says: it may be the cache's business, offline.)
fn check_parents(request: &RunRequest<'_>, plan: &Plan) -> Result<()> {
    let selected: BTreeSet<&str> = request.images.iter().map(String::as_str).collect();
    for image in &plan.images {
        if request.parents_from_registry && !selected.contains(&*image.name) {
            super::from_registry::plan_image_reference(image)?;
        } else if let Parent::Registry(text) = &image.parent {
            super::from_registry::parent_reference(&image.name, text)?;
        }
    }
    Ok(())
}

/// Every platform other than the host's runs under qemu-user, registered with binfmt_misc's
/// `F` flag (see `sandbox::binfmt`).
fn check_platforms(plan: &Plan) -> Result<()> {
    use crate::sandbox::binfmt::{self, State};
    use crate::stage3::arch;
    let host = Platform::host();
    let host_arch = arch::of(&host);
    let mut foreign: Vec<&Platform> = Vec::new();
    for platform in plan.images.iter().flat_map(|i| &i.platforms) {
        if arch::of(platform) != host_arch
            && !foreign
                .iter()
                .any(|p| p.architecture == platform.architecture)
        {
            foreign.push(platform);
        }
    }
    for platform in &foreign {
        let Some(arch) = arch::of(platform) else {
            continue;
        };
        let name = format!("qemu-{}", arch.qemu);
        let needs = format!(
            "building for {platform} on this {host} host runs its binaries under qemu-user, \
            registered with binfmt_misc's F flag"
        );
        let install = format!(
            "as root: apt install qemu-user-static binfmt-support (it registers {name} with F), \
            or a CI's setup-qemu step"
        );
        match binfmt::qemu_state(arch.qemu) {
            State::NotMounted => {
                return Err(UserError::new(format!(
                    "{needs}, and binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc"
                ))
                .hint(format!(
                    "as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; then {}",
                    install.trim_start_matches("as root: ")
                )));
            }
            State::Missing => {
                return Err(
                    UserError::new(format!("{needs}, and {name} is not registered")).hint(install),
                );
            }
            State::Present(entry) if !entry.enabled => {
                return Err(UserError::new(format!(
                    "{needs}, and {name} is registered but disabled"
                ))
                .hint(format!("as root: update-binfmts --enable {name}")));
            }
            State::Present(entry) if !entry.fixed() => {
                let fix = match entry.register_line_with_fix(&name) {
                    Some(line) => format!(
                        "as root: echo -1 > /proc/sys/fs/binfmt_misc/{name} && echo '{line}' > \
                        /proc/sys/fs/binfmt_misc/register"
                    ),
                    None => format!("as root: register {name} again with the F flag"),
                };
                return Err(UserError::new(format!(
                    "{needs}, and {name} is registered without F (flags: `{}`): its interpreter \
                    {} cannot be found inside gib's sandbox",
                    entry.flags, entry.interpreter
                ))
                .hint(fix));
            }
            State::Present(_) => {}
        }
    }
    Ok(())
}

/// `--oci-layout`: a directory gib can write in, or a new one (made with its parents) under
/// the nearest existing directory, which gib can write in.
fn check_layout(dir: &Path) -> Result<()> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => return writable_dir(existing, "--oci-layout", dir),
            Ok(_) if existing == dir => {
                return Err(UserError::with_hint(
                    format!("--oci-layout {} is a file, not a directory", dir.display()),
                    "an OCI layout is a directory: name a new or existing directory (use \
                     --archive for a single file)",
                ));
            }
            Ok(_) => {
                return Err(UserError::with_hint(
                    format!(
                        "--oci-layout {}: {} is a file, not a directory",
                        dir.display(),
                        existing.display()
                    ),
                    "name a directory that can be made there",
                ));
            }
            Err(err) => {
                let parent = parent_of(existing);
                if parent == existing {
                    return Err(UserError::new(format!(
                        "--oci-layout {}: cannot read {}: {err}",
                        dir.display(),
                        existing.display()
                    ))
                    .into());
                }
                existing = parent;
            }
        }
    }
}

/// `--archive`: a file (new or replaced) in a directory gib can write in.
fn check_archive(file: &Path) -> Result<()> {
    if std::fs::metadata(file).is_ok_and(|m| m.is_dir()) {
        return Err(UserError::with_hint(
            format!("--archive {} is a directory, not a file", file.display()),
            "name the archive file to write, e.g. --archive images.tar",
        ));
    }
    let parent = parent_of(file);
    match std::fs::metadata(parent) {
        Ok(meta) if meta.is_dir() => writable_dir(parent, "--archive", file),
        _ => Err(UserError::with_hint(
            format!(
                "--archive {}: the directory {} does not exist",
                file.display(),
                parent.display()
            ),
            format!("create it first: mkdir -p {}", parent.display()),
        )),
    }
}

/// The directory a path is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Whether gib can create a file in `dir`, found out by creating (and removing) one: the
/// mode bits do not tell (root, ACLs, a read-only mount).
fn writable_dir(dir: &Path, flag: &str, output: &Path) -> Result<()> {
    tempfile::Builder::new()
        .prefix(".gib-preflight-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|err| {
            UserError::with_hint(
                format!(
                    "{flag} {}: cannot write in {}: {}",
                    output.display(),
                    dir.display(),
                    err.kind()
                ),
                "choose a directory you can write in",
            )
        })
}

/// `--push` / `gib push`: every image to push has a registry reference, and its registry
/// answers `/v2/` and accepts the credentials for a push.
fn check_push(request: &RunRequest<'_>, plan: &Plan) -> Result<()> {
    let selected: BTreeSet<&str> = request.images.iter().map(String::as_str).collect();
    // With --parents-from-registry only the named images are pushed; their parents are
    // pulled.
    let pushed = plan.images.iter().filter(|image| {
        !request.parents_from_registry || selected.is_empty() || selected.contains(&*image.name)
    });
    let mut targets = BTreeSet::new();
    for image in pushed {
        let Some(registry) = &image.registry else {
            return Err(UserError::with_hint(
                format!(
                    "cannot push image {}: gib.yaml names no registry (`registry:`)",
                    image.name
                ),
                "set `registry:` in gib.yaml to a prefix such as registry.example.org/mine \
                 (at the top, or in the image)",
            ));
        };
        // The tag is known only after the build; any valid one tells whether the rest is.
        let reference = format!("{registry}/{}:latest", image.name);
        let parsed = Reference::parse(&reference).map_err(|err| {
            UserError::with_hint(
                format!("cannot push image {}: {err}", image.name),
                "`registry:` is a registry host and an optional path, such as \
                 registry.example.org/mine",
            )
        })?;
        targets.insert(format!("{}/{}", parsed.registry, parsed.repository));
    }
    let client = crate::output::registry::client(&request.config.registries);
    for target in targets {
        let target = Reference::parse(&target).map_err(anyhow::Error::msg)?;
        crate::registry::check_push_access(&client, &target)?;
    }
    Ok(())
}

/// The sandbox can map the ids a build needs: an unprivileged user needs a subordinate id
/// range (a build with one id cannot give files their owners, which Portage's packages
/// do), and the kernel must let it create user namespaces.
fn check_sandbox() -> Result<()> {
    let mode = crate::sandbox::id_mode()?;
    if mode.is_single() && !nix::unistd::getuid().is_root() {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map_or_else(|| nix::unistd::getuid().to_string(), |u| u.name);
        return Err(UserError::new(format!(
            "user {user} has no subordinate id range in /etc/subuid and /etc/subgid: gib \
             builds with one (packages give files owners other than root)"
        ))
        .hint(format!(
            "as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user} \
             (any free range of 65536 ids)"
        )));
    }
    crate::sandbox::check_unprivileged_userns()
}
