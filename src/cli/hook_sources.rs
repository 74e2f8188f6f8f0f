//! `gib __sources …` (feature `test-hooks`): hidden test hooks that fetch a stage3 flavor or
//! sync one ebuild repository into a cache and print the result as JSON. The integration tests drive the
//! `stage3::flavor` and `repository` modules through them; `gib build` calls the modules
//! directly. What they trust is given as arguments, as gib.yaml gives it to `gib build`
//! (`stage3.fingerprint`, …); `--keyserver` lets a test serve the pinned key itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::cache::Cache;
use crate::config::SyncType;
use crate::openpgp::{Trust, TrustedKey};
use crate::printer::Printer;
use crate::repository::{self, RepoSpec};
use crate::stage3::flavor;

#[derive(Args, Debug)]
pub struct SourcesArgs {
    #[command(subcommand)]
    pub command: SourcesCommand,
    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `openpgp::Trust` as arguments: Gentoo's pinned keys unless given.
#[derive(Args, Debug)]
pub struct TrustArgs {
    /// `stage3.fingerprint`
    #[arg(long, global = true)]
    releng_fingerprint: Option<String>,
    /// `stage3.keyring`
    #[arg(long, global = true)]
    releng_keyring: Option<PathBuf>,
    /// `portage.fingerprint`
    #[arg(long, global = true)]
    snapshot_fingerprint: Option<String>,
    /// `portage.keyring`
    #[arg(long, global = true)]
    snapshot_keyring: Option<PathBuf>,
    /// `stage3.ca_certificate`
    #[arg(long, global = true)]
    stage3_ca_certificate: Option<PathBuf>,
    /// Where pinned keys are fetched (a fingerprint is appended).
    #[arg(long, global = true)]
    keyserver: Option<String>,
}

impl TrustArgs {
    fn trust(self) -> Result<Trust> {
        let mut trust = Trust::gentoo();
        let alone = [
            (
                self.releng_keyring.is_some() && self.releng_fingerprint.is_none(),
                "releng",
            ),
            (
                self.snapshot_keyring.is_some() && self.snapshot_fingerprint.is_none(),
                "snapshot",
            ),
        ];
        if let Some((_, which)) = alone.iter().find(|(alone, _)| *alone) {
            anyhow::bail!("--{which}-keyring needs --{which}-fingerprint");
        }
        if let Some(fingerprint) = &self.releng_fingerprint {
            trust.releng = TrustedKey::named(fingerprint, self.releng_keyring)?;
        }
        if let Some(fingerprint) = &self.snapshot_fingerprint {
            trust.snapshots = TrustedKey::named(fingerprint, self.snapshot_keyring)?;
        }
        trust.stage3_ca_certificate = self.stage3_ca_certificate;
        if let Some(keyserver) = self.keyserver {
            trust.keyserver = keyserver;
        }
        Ok(trust)
    }
}

#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// Resolve, download and verify a stage3 flavor; print the verified tarball.
    FetchStage3 {
        #[arg(long)]
        flavor: String,
        #[arg(long, default_value = crate::gentoo::MIRROR)]
        mirror: String,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long)]
        offline: bool,
    },
    /// Sync one ebuild repository; print what to bind.
    SyncRepo {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_sync_type)]
        sync_type: SyncType,
        #[arg(long)]
        uri: Option<String>,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        ca_certificate: Option<PathBuf>,
        #[arg(long)]
        priority: Option<i32>,
        #[arg(long)]
        cache_dir: PathBuf,
        #[arg(long)]
        offline: bool,
    },
}

fn parse_sync_type(text: &str) -> Result<SyncType, String> {
    match text {
        "git" => Ok(SyncType::Git),
        "rsync" => Ok(SyncType::Rsync),
        "webrsync" => Ok(SyncType::Webrsync),
        "local" => Ok(SyncType::Local),
        "none" => Ok(SyncType::None),
        other => Err(format!("unknown sync type `{other}`")),
    }
}

pub fn run(args: SourcesArgs) -> Result<ExitCode> {
    let printer = Printer::new(true);
    let trust = args.trust.trust()?;
    let json = match args.command {
        SourcesCommand::FetchStage3 {
            flavor: name,
            mirror,
            pin,
            cache_dir,
            offline,
        } => {
            let cache = Cache::open(Some(&cache_dir))?;
            let tarball = flavor::fetch(
                &name,
                &mirror,
                pin.as_deref(),
                &cache,
                offline,
                &trust,
                &printer,
            )?;
            serde_json::to_string_pretty(&tarball)?
        }
        SourcesCommand::SyncRepo {
            name,
            sync_type,
            uri,
            pin,
            ca_certificate,
            priority,
            cache_dir,
            offline,
        } => {
            let cache = Cache::open(Some(&cache_dir))?;
            let spec = RepoSpec {
                name,
                sync_type,
                uri,
                pin,
                ca_certificate,
                priority,
                trust,
            };
            let synced = repository::sync(&spec, &cache, offline, &printer)?;
            serde_json::to_string_pretty(&synced)?
        }
    };
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
