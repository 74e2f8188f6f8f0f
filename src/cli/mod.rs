//! The command line: argument definitions (clap derive) and dispatch, one file per subcommand.
//!
//! Exit codes: 0 success, 1 a build or test failed, 2 bad usage or configuration.

mod audit;
mod build;
mod clean;
mod completions;
mod emit;
mod graph;
mod inspect;
mod internal;
mod plan;
mod push;
mod schema;
mod shell;
mod update;
// Test hooks: the registry client and the source fetchers on their own, as a process the
// integration tests can run as another user with other bounds. Built only with the
// `test-hooks` feature, which the tests turn on (Cargo.toml): never in an installed gib.
#[cfg(feature = "test-hooks")]
mod hook_registry;
#[cfg(feature = "test-hooks")]
mod hook_sources;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::printer::Printer;

const EXAMPLES: &str = "\
Examples:
  gib build                        build every image of ./gib.yaml
  gib build app --archive app.tar  build app and its parents into an archive
  gib build --oci-layout ./oci     write every image into an OCI layout
  gib build --push                 build, then push every tag to the registry
  gib build app --push --parents-from-registry
                                   CI: pull app's parents; build and push app
  gib plan --json                  the build order, tags and Portage files
  gib graph --format mermaid       draw the image DAG
  gib shell base                   a shell in the builder root of image base
  gib clean --builders             remove builder roots; print what was freed
";

#[derive(Parser, Debug)]
#[command(name = "gib", version, about = "Build tiny distroless OCI images from Gentoo, rootless, with no container runtime", after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build images (and their ancestors) and write them to the chosen outputs.
    Build(BuildArgs),
    /// The security advisories (GLSAs) that affect the last build of each image, judged by
    /// gib.yaml's `audit:`; from the cache, without the network.
    Audit(audit::AuditArgs),
    /// What the last build of an image holds: package shares, biggest files, what trimming
    /// removed, lint and audit results; `--html FILE` as one self-contained page.
    Inspect(inspect::InspectArgs),
    /// Show the build order, tags and the Portage files gib would write; builds nothing.
    Plan(PlanArgs),
    /// Build what changed (reusing the rest from the cache), then push every tag of every
    /// image to its registry; `gib build --push` without outputs.
    Push(PushArgs),
    /// Move gib.lock to the newest stage3 and repository snapshots gib.yaml allows, and say
    /// what changed; builds nothing.
    Update(UpdateArgs),
    /// Draw the image DAG.
    Graph(GraphArgs),
    /// An interactive shell in an image's builder root, with the mounts `gib build` uses.
    Shell(ShellArgs),
    /// Remove builder roots, binary packages, distfiles or everything from the cache.
    Clean(CleanArgs),
    /// Print the JSON Schema of gib.yaml, for editors' YAML language servers.
    Schema(schema::SchemaArgs),
    /// Print a shell completion script (e.g. `gib completions bash > /etc/bash_completion.d/gib`).
    Completions(completions::CompletionsArgs),
    /// Write the manual pages (gib.1 and gib-<subcommand>.1) into a directory.
    Man(completions::ManArgs),
    /// Hidden helpers that gib runs inside its own namespaces.
    #[command(hide = true, name = "__internal")]
    Internal(internal::InternalArgs),
    /// Test hook: fetch a stage3 flavor, sync an ebuild repository.
    #[cfg(feature = "test-hooks")]
    #[command(hide = true, name = "__sources")]
    Sources(hook_sources::SourcesArgs),
    /// Test hook: the registry client on its own (push a blob directory, pull an image).
    #[cfg(feature = "test-hooks")]
    #[command(hide = true, name = "__registry")]
    Registry(hook_registry::RegistryArgs),
}

/// Options every subcommand that reads gib.yaml shares.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "gib.yaml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Images to build (with their ancestors); all when none is named.
    pub images: Vec<String>,
    /// Write the images into this OCI image layout (other entries are kept).
    #[arg(long, value_name = "DIR")]
    pub oci_layout: Option<PathBuf>,
    /// Write one tar that `podman load`, `docker load` and `skopeo copy oci-archive:` accept.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Push every tag of every built image to the registry (after the other outputs).
    #[arg(long)]
    pub push: bool,
    /// Pull the ancestors of the named images from the registry (by explicit tag, else
    /// `latest`) instead of building them; for CI fleets that build one image per job.
    #[arg(long, requires = "images")]
    pub parents_from_registry: bool,
    /// Build only this platform's images (`os/arch`, one of gib.yaml's `platforms`): one
    /// leg of a multi-platform build.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// `gib push --index`: build nothing, join the legs in the registry into indexes.
    #[arg(skip)]
    pub join_index: bool,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Rebuild even when nothing changed.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON report of what was built on stdout.
    #[arg(long)]
    pub json: bool,
    /// Stream the output of emerge and other build commands.
    #[arg(short, long)]
    pub verbose: bool,
    /// Network inside the builder: `host` (default; emerge fetches sources) or `none`.
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub network: String,
    /// Use only what is cached (stage3, repositories); fail instead of downloading.
    #[arg(long)]
    pub offline: bool,
    /// Build exactly what gib.lock names; fail (and leave it as it is) when gib.yaml asks for
    /// an input it does not name. For CI.
    #[arg(long)]
    pub locked: bool,
    /// `auto`: live progress lines when stderr is a terminal; `plain`: one line per event.
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    pub progress: ProgressMode,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

/// How many images `gib build` and `gib push` build at once.
#[derive(Args, Debug, Clone, Copy)]
pub struct ScheduleArgs {
    /// Build up to N images at once, each as soon as its parent is built [default:
    /// `build.parallel_images`, else min(CPUs, GiB of memory / 2)].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Stop everything at the first failure (running builds are ended); without it an image
    /// that fails stops only the images built on it.
    #[arg(long)]
    pub fail_fast: bool,
}

/// How `gib build` and `gib push` show their progress.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// Live lines on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines, even on a terminal.
    Plain,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Images to push (with their ancestors); all when none is named.
    pub images: Vec<String>,
    /// Pull the ancestors of the named images instead of building or pushing them.
    #[arg(long, requires = "images")]
    pub parents_from_registry: bool,
    /// Push only this platform's images (`os/arch`, one of gib.yaml's `platforms`), each
    /// under its platform's tags (`1.0-arm64`): one leg, for `--index` to join.
    #[arg(long, value_name = "OS/ARCH", conflicts_with = "index")]
    pub platform: Option<String>,
    /// Build nothing: join every platform's image, which the legs pushed, into one index
    /// under the image's tags (only manifests are read; no layer is pulled).
    #[arg(long)]
    pub index: bool,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print a JSON report of what was pushed on stdout.
    #[arg(long)]
    pub json: bool,
    /// Stream the output of emerge and other build commands.
    #[arg(short, long)]
    pub verbose: bool,
    /// Use only what is cached (stage3, repositories) should anything need a rebuild.
    #[arg(long)]
    pub offline: bool,
    /// Build exactly what gib.lock names; fail when gib.yaml asks for an input it does not
    /// name. For CI.
    #[arg(long)]
    pub locked: bool,
    /// `auto`: live progress lines when stderr is a terminal; `plain`: one line per event.
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    pub progress: ProgressMode,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Images to plan (with their ancestors); all when none is named.
    pub images: Vec<String>,
    /// Print the plan as JSON.
    #[arg(long, conflicts_with = "emit")]
    pub json: bool,
    /// Print a CI workflow with one job per image, each after its parent's.
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub emit: Option<emit::Engine>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Repositories to update (by name: `gentoo`, an overlay's); with no name and no
    /// `--stage3`/`--repos`, everything.
    pub names: Vec<String>,
    /// Update the stage3.
    #[arg(long)]
    pub stage3: bool,
    /// Update every repository.
    #[arg(long)]
    pub repos: bool,
    /// Record the binhost's current index.
    #[arg(long)]
    pub binhost: bool,
    /// Move only this platform's entries (`os/arch`, one of gib.yaml's `platforms`); without
    /// it, every platform's.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Stream the output of the commands gib runs.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "mermaid")]
    pub format: GraphFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The image whose builder root to enter; the stage3 root when none is named.
    pub image: Option<String>,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Network inside the builder: `host` (default) or `none`.
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub network: String,
}

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Image entries (builder roots and layer trees), unpacked stage3s, scratch space, logs.
    #[arg(long)]
    pub builders: bool,
    /// The binary package cache.
    #[arg(long)]
    pub binpkgs: bool,
    /// Downloaded source archives.
    #[arg(long)]
    pub distfiles: bool,
    /// Everything in the cache (blobs, downloads and repositories too).
    #[arg(long)]
    pub all: bool,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(false);
    // The outputs keep the user's umask; what gib makes for its sandbox does not (see
    // `sandbox::let_the_sandbox_in`). Read before it changes, and before any thread starts.
    crate::output::user_umask();
    crate::sandbox::let_the_sandbox_in();
    let result = match cli.command {
        Command::Build(args) => build::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Push(args) => push::run(args),
        Command::Update(args) => update::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Shell(args) => shell::run(args),
        Command::Clean(args) => clean::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::Internal(args) => internal::run(args),
        #[cfg(feature = "test-hooks")]
        Command::Sources(args) => hook_sources::run(args),
        #[cfg(feature = "test-hooks")]
        Command::Registry(args) => hook_registry::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => printer.fail(&err),
    }
}

/// `--network`: `host` or `none`.
fn parse_network(text: &str) -> anyhow::Result<crate::sandbox::Network> {
    match text {
        "host" => Ok(crate::sandbox::Network::Host),
        "none" => Ok(crate::sandbox::Network::None),
        other => Err(crate::printer::UserError::new(format!(
            "unknown network mode `{other}`: expected `host` or `none`"
        ))
        .into()),
    }
}

/// SOURCE_DATE_EPOCH, when set: clamps mtimes and dates the image.
fn source_date_epoch() -> anyhow::Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => value.trim().parse().map(Some).map_err(|_| {
            crate::printer::UserError::new(format!(
                "SOURCE_DATE_EPOCH must be a number of seconds, not {value:?}"
            ))
            .into()
        }),
        _ => Ok(None),
    }
}

/// gib's exit code for a sandboxed command's exit (128 + signal for a signal).
fn exit_code(exit: crate::sandbox::Exit) -> ExitCode {
    ExitCode::from(u8::try_from(exit.code()).unwrap_or(u8::MAX))
}

/// An `--platform OS/ARCH` argument.
fn platform_arg(text: &str) -> Result<crate::oci::spec::Platform, String> {
    crate::oci::spec::Platform::parse(text)
}
