//! `gib update`: move gib.lock. The stage3 (a flavor's newest build, a `url:` downloaded
//! again) and the repositories (their newest commit or snapshot) are resolved afresh, as
//! gib.yaml says, and each input that moved is printed `old → new`. Builds nothing.

use std::process::ExitCode;

use anyhow::Result;

use super::UpdateArgs;
use crate::build::{BuildOptions, LockMode, Session, UpdateSelection};
use crate::lock::Lock;
use crate::plan::Plan;
use crate::printer::{Hint, Printer, UserError};

pub fn run(args: UpdateArgs) -> Result<ExitCode> {
    let printer = Printer::new(args.verbose);
    let config = crate::config::load(&args.config.file)?;
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
    let options = BuildOptions {
        lock: LockMode::Update(selection),
        ..BuildOptions::default()
    };
    let ctx = session.context(&plan, &config, options, &printer)?;
    ctx.resolve_inputs()?;
    let after = Lock::read(&lock_path)?;
    let unchanged = after
        .as_ref()
        .map(|a| a.changes_from(before.as_ref()).is_empty());
    if unchanged != Some(false) {
        printer.status(
            "Unchanged",
            &format!("{} already names the newest inputs", lock_path.display()),
        );
    }
    Ok(ExitCode::SUCCESS)
}
