//! `gib inspect IMAGE`: what the last build of an image holds, from its cache entry: each
//! package's share, the biggest files, files of no package, and what trimming removed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::build::latest_record;
use crate::build::report::{ImageUsage, image_usage_in_namespace};
use crate::cache::Cache;
use crate::printer::UserError;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image's name in gib.yaml.
    pub image: String,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How many of the biggest files to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub largest: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let cache = Cache::open(args.cache_dir.as_deref())?;
    let Some(record) = latest_record(&cache, &args.image)? else {
        return Err(UserError::new(format!(
            "no build of image {} in {}; run `gib build {}` first",
            args.image,
            cache.root().display(),
            args.image
        ))
        .into());
    };
    let report = image_usage_in_namespace(&cache, &record, args.largest)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report, args.largest));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(report: &ImageUsage, largest: usize) -> String {
    let usage = &report.usage;
    let mut out = format!(
        "{} {}\n  {} in {} files ({} stored)\n\npackages:\n",
        report.name,
        report.digest,
        human(usage.total_bytes),
        usage.total_files,
        human(report.stored_bytes)
    );
    for package in &usage.packages {
        out.push_str(&format!(
            "  {:>10}  {:>5} files  {}\n",
            human(package.bytes),
            package.files,
            package.package
        ));
    }
    out.push_str(&format!(
        "  {:>10}  {:>5} files  (no package)\n\nlargest files:\n",
        human(usage.unowned.bytes),
        usage.unowned.files.len()
    ));
    for file in &usage.largest_files {
        out.push_str(&format!(
            "  {:>10}  {}  {}\n",
            human(file.bytes),
            file.path,
            file.owner.as_deref().unwrap_or("(no package)")
        ));
    }
    out.push_str("\nfiles of no package (largest):\n");
    for file in usage.unowned.files.iter().take(largest) {
        out.push_str(&format!("  {:>10}  {}\n", human(file.bytes), file.path));
    }
    out.push_str(&format!("\ntrimmed ({}):\n", human(report.trimmed_bytes)));
    for file in &report.trimmed {
        out.push_str(&format!("  {:>10}  {}\n", human(file.bytes), file.path));
    }
    out
}

/// Bytes with a binary unit, one decimal.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(2048), "2.0 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
