//! Hidden subcommands: `job`, the helper side of every job gib runs inside its namespaces
//! (`crate::jobs`), and a sandbox runner for tests and debugging. Not for users.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::cache::Cache;
use crate::printer::Printer;
use crate::sandbox::{self, ExtraMount, RootFs, SandboxSpec, SandboxStdio};
use crate::stage3;

#[derive(Args, Debug)]
pub struct InternalArgs {
    #[command(subcommand)]
    pub command: InternalCommand,
}

#[derive(Subcommand, Debug)]
pub enum InternalCommand {
    /// Run one of gib's jobs (`crate::jobs::Job` as JSON on stdin, its reply as JSON on
    /// stdout); gib starts it inside the user namespace.
    Job,
    /// Run a command in a sandbox (tests and debugging).
    Run(Box<RunArgs>),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A directory as the root (used in place).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["lower", "stage3"])]
    root: Option<PathBuf>,
    /// Overlay lower directories, topmost first (with --upper and --work).
    #[arg(long, value_name = "DIR", requires_all = ["upper", "work"])]
    lower: Vec<PathBuf>,
    #[arg(long, value_name = "DIR")]
    upper: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// A stage3 tarball (a path, or an http(s) URL): prepared in the cache and entered as
    /// `gib shell` does.
    #[arg(long, value_name = "TARBALL", requires = "cache_dir")]
    stage3: Option<String>,
    /// The expected sha512 of --stage3.
    #[arg(long, requires = "stage3")]
    sha512: Option<String>,
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// SRC:DST, read-write.
    #[arg(long, value_name = "SRC:DST")]
    bind: Vec<String>,
    /// SRC:DST, read-only.
    #[arg(long, value_name = "SRC:DST")]
    ro_bind: Vec<String>,
    /// TARGET:LOWER:UPPER:WORK, an overlay inside the root (one lower dir).
    #[arg(long, value_name = "TARGET:LOWER:UPPER:WORK")]
    overlay: Vec<String>,
    /// `host` or `none`.
    #[arg(long, default_value = "host")]
    network: String,
    #[arg(long, default_value = "/")]
    cwd: PathBuf,
    /// Send the command's stdout and stderr to this file (as a build log), stdin from nothing.
    #[arg(long, value_name = "FILE", conflicts_with = "stage3")]
    log: Option<PathBuf>,
    /// The command; with --stage3 and none, an interactive shell as `gib shell` starts.
    #[arg(last = true, required_unless_present = "stage3")]
    command: Vec<OsString>,
}

pub fn run(args: InternalArgs) -> Result<ExitCode> {
    match args.command {
        InternalCommand::Job => {
            crate::jobs::serve()?;
            Ok(ExitCode::SUCCESS)
        }
        InternalCommand::Run(args) => run_sandbox(*args),
    }
}

fn run_sandbox(args: RunArgs) -> Result<ExitCode> {
    let printer = Printer::new(false);
    let network = super::parse_network(&args.network)?;
    let mut mounts = Vec::new();
    for (spec, readonly) in args
        .bind
        .iter()
        .map(|b| (b, false))
        .chain(args.ro_bind.iter().map(|b| (b, true)))
    {
        let Some((source, target)) = spec.split_once(':') else {
            bail!("--bind {spec}: expected SRC:DST");
        };
        mounts.push(ExtraMount::Bind {
            source: source.into(),
            target: target.into(),
            readonly,
        });
    }
    for spec in &args.overlay {
        let parts: Vec<&str> = spec.split(':').collect();
        let [target, lower, upper, work] = parts[..] else {
            bail!("--overlay {spec}: expected TARGET:LOWER:UPPER:WORK");
        };
        mounts.push(ExtraMount::Overlay {
            target: target.into(),
            lowers: vec![lower.into()],
            upper: upper.into(),
            work: work.into(),
        });
    }
    if let Some(tarball) = &args.stage3 {
        let cache = Cache::open(args.cache_dir.as_deref())?;
        let source = if tarball.starts_with("http://") || tarball.starts_with("https://") {
            crate::config::Stage3::Url {
                url: tarball.clone(),
                sha512: args.sha512,
            }
        } else {
            crate::config::Stage3::Path {
                path: tarball.into(),
                sha512: args.sha512,
            }
        };
        let root = stage3::prepare(&source, &cache, &printer)?;
        stage3::check_runs_here(&root)?;
        let exit = crate::build::run_in_stage3(
            &root,
            &cache,
            network,
            (!args.command.is_empty()).then_some(args.command),
            mounts,
            &printer,
        )?;
        return Ok(super::exit_code(exit));
    }
    let root = match (args.root, args.lower.is_empty()) {
        (Some(dir), _) => Some(RootFs::Dir(dir)),
        (None, false) => Some(RootFs::Overlay {
            lowers: args.lower,
            upper: args.upper.context("--lower needs --upper")?,
            work: args.work.context("--lower needs --work")?,
        }),
        (None, true) => None,
    };
    sandbox::id_mode_warned(&printer)?;
    let spec = SandboxSpec {
        root,
        mounts,
        network,
        hostname: "gib".into(),
        command: args.command,
        env: sandbox::default_env(),
        cwd: args.cwd,
        interactive: false,
        user: None,
    };
    let stdio = match &args.log {
        Some(path) => {
            let log = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            SandboxStdio::log_file(&log)?
        }
        None => SandboxStdio::inherit(),
    };
    let exit = sandbox::run(&spec, stdio)?;
    Ok(super::exit_code(exit))
}
