//! `gib inspect IMAGE`: what the last build of an image holds, from its cache entry: each
//! package's share, the biggest files, files of no package, and what trimming removed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::build::latest_record;
use crate::build::report::{ImageUsage, image_usage_in_namespace};
use crate::cache::Cache;
use crate::printer::{UserError, human_bytes};

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
        "{} {}\n  {} in {} ({} stored)\n\npackages:\n",
        report.name,
        report.digest,
        human_bytes(usage.total_bytes),
        files(usage.total_files),
        human_bytes(report.stored_bytes)
    );
    for package in &usage.packages {
        out.push_str(&format!(
            "  {:>10}  {:>11}  {}\n",
            human_bytes(package.bytes),
            files(package.files),
            package.package
        ));
    }
    out.push_str(&format!(
        "  {:>10}  {:>11}  (no package)\n\nlargest files:\n",
        human_bytes(usage.unowned.bytes),
        files(usage.unowned.files.len() as u64)
    ));
    for file in &usage.largest_files {
        out.push_str(&format!(
            "  {:>10}  {}  {}\n",
            human_bytes(file.bytes),
            file.path,
            file.owner.as_deref().unwrap_or("(no package)")
        ));
    }
    out.push_str("\nfiles of no package (largest):\n");
    for file in usage.unowned.files.iter().take(largest) {
        out.push_str(&format!(
            "  {:>10}  {}\n",
            human_bytes(file.bytes),
            file.path
        ));
    }
    out.push_str(&format!(
        "\ntrimmed ({}):\n",
        human_bytes(report.trimmed_bytes)
    ));
    for file in &report.trimmed {
        out.push_str(&format!(
            "  {:>10}  {}\n",
            human_bytes(file.bytes),
            file.path
        ));
    }
    out
}

/// `1 file`, `2 files`.
fn files(count: u64) -> String {
    if count == 1 {
        "1 file".to_string()
    } else {
        format!("{count} files")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::usage::{FileUsage, PackageUsage, UnownedUsage, UsageReport};

    #[test]
    fn counts_are_pluralised() {
        let cache = FileUsage {
            path: "/etc/ld.so.cache".into(),
            bytes: 2048,
            owner: None,
        };
        let report = ImageUsage {
            name: "app".into(),
            digest: "sha256:00".into(),
            stored_bytes: 4096,
            usage: UsageReport {
                total_bytes: 3072,
                total_files: 2,
                packages: vec![PackageUsage {
                    package: "app-misc/greet-1.0".into(),
                    bytes: 1024,
                    files: 1,
                }],
                unowned: UnownedUsage {
                    bytes: 2048,
                    files: vec![cache.clone()],
                },
                largest_files: vec![cache],
                layers: Vec::new(),
            },
            trimmed: Vec::new(),
            trimmed_bytes: 0,
        };
        let text = text(&report, 10);
        assert!(
            text.contains("3.0 KiB in 2 files (4.0 KiB stored)"),
            "{text}"
        );
        assert!(text.contains("     1 file  app-misc/greet-1.0"), "{text}");
        assert!(text.contains("     1 file  (no package)"), "{text}");
        assert!(!text.contains("1 files"), "{text}");
    }
}
