//! `gib update`: move gib.lock. The stage3 (a flavor's newest build, a `url:` downloaded
//! again) and the repositories (their newest commit or snapshot) are resolved afresh, as
//! gib.yaml says, and each input that moved is printed `old → new`. Builds nothing. Each
//! platform's inputs are resolved in turn (its stage3 is another), or one's with `--platform`.

use std::process::ExitCode;

use anyhow::Result;

use super::UpdateArgs;
use crate::build::{BuildOptions, LockMode, Session, UpdateSelection};
use crate::lock::Lock;
use crate::plan::Plan;
use crate::printer::{Hint, Printer, UserError};

pub fn run(args: UpdateArgs) -> Result<ExitCode> {
    let printer = Printer::new(args.verbose);
    let mut config = crate::config::load(&args.config.file)?;
    if let Some(platform) = &args.platform {
        config.keep_only_platform(platform)?;
    }
    let plan = Plan::resolve(&config, &[])?;
    let known: Vec<String> = std::iter::once(crate::repository::MAIN_REPO.to_string())
        .chain(plan.repositories.iter().map(|r| r.name.clone()))
        .collect();
    for name in &args.names {
        if !known.contains(name) {
            return Err(UserError::new(format!(
                "{} has no repository `{name}`",
                args.config.file.display()
            ))
            .hint(format!("its repositories are: {}", known.join(", "))));
        }
    }
    let everything = !args.stage3 && !args.repos && !args.binhost && args.names.is_empty();
    let selection = UpdateSelection {
        stage3: everything || args.stage3,
        repositories: args.names.clone(),
        all_repositories: everything || args.repos,
        binhost: everything || args.binhost,
    };
    let lock_path = Lock::path_for(&plan.file);
    let before = Lock::read(&lock_path)?;
    let session = Session::open(args.cache_dir.as_deref())?;
    // One platform's plan at a time: each resolves in its own stage3 and writes its entries.
    let platforms: Vec<String> = plan
        .stage3_by_platform
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    let legs = if platforms.len() > 1 {
        let mut legs = Vec::new();
        for platform in &platforms {
            let mut leg = config.clone();
            leg.keep_only_platform(platform)?;
            let plan = Plan::resolve(&leg, &[])?;
            legs.push((leg, plan));
        }
        legs
    } else {
        vec![(config, plan)]
    };
    for (config, plan) in &legs {
        let options = BuildOptions {
            lock: LockMode::Update(selection.clone()),
            ..BuildOptions::default()
        };
        let ctx = session.context(plan, config, options, &printer)?;
        ctx.resolve_inputs()?;
    }
    let after = Lock::read(&lock_path)?;
    if after.is_none() || after == before {
        printer.status(
            "Unchanged",
            &format!("{} already names the newest inputs", lock_path.display()),
        );
    }
    Ok(ExitCode::SUCCESS)
}
