//! `gib inspect IMAGE`: what the last build of an image holds, from its cache entry: each
//! package's share, the biggest files, files of no package, what trimming removed, and the
//! lint and audit results kept with the build. `--html FILE` writes the same for the images of
//! gib.yaml as one self-contained page (`page`).

mod page;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::build::BuiltImage;
use crate::build::latest_record;
use crate::build::report::{ImageUsage, image_usage_in_namespace};
use crate::cache::Cache;
use crate::printer::{UserError, human_bytes};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image's name in gib.yaml (with `--html`: it and its ancestors; every image of
    /// gib.yaml when left out).
    #[arg(required_unless_present = "html")]
    pub image: Option<String>,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// How many of the biggest files to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub largest: usize,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "html")]
    pub json: bool,
    /// Write one self-contained HTML page (the image DAG, sizes as treemaps by layer and
    /// package, what trimming removed, lint and audit results) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The build of this platform (`os/arch`) of an image of several platforms; the most
    /// recent build of any platform without it.
    #[arg(long, value_name = "OS/ARCH", value_parser = super::platform_arg)]
    pub platform: Option<crate::oci::spec::Platform>,
    #[command(flatten)]
    pub config: super::ConfigArgs,
}

pub fn run(args: InspectArgs) -> Result<ExitCode> {
    let cache = Cache::open(args.cache_dir.as_deref())?;
    if let Some(file) = &args.html {
        return page::write(&args, &cache, file);
    }
    let Some(name) = args.image.as_deref() else {
        anyhow::bail!("gib bug: clap let `gib inspect` run without an image or --html");
    };
    let record = last_build(&cache, name, args.platform.as_ref())?;
    let report = image_usage_in_namespace(&cache, &record, args.largest)?;
    let checks = Checks::of(&cache, &record)?;
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        json["lint"] = checks.lint.clone().unwrap_or(Value::Null);
        json["audit"] = checks.audit.clone().unwrap_or(Value::Null);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", text(&report, args.largest));
        print!("{}", checks.text());
    }
    Ok(ExitCode::SUCCESS)
}

/// The record of the last build of `name`; a user error when there is none.
fn last_build(
    cache: &Cache,
    name: &str,
    platform: Option<&crate::oci::spec::Platform>,
) -> Result<BuiltImage> {
    latest_record(cache, name, platform)?.ok_or_else(|| {
        let of = platform.map(|p| format!(" for {p}")).unwrap_or_default();
        UserError::new(format!(
            "no build of image {name}{of} in {}; run `gib build {name}` first",
            cache.root().display(),
        ))
        .into()
    })
}

/// The lint and audit results a build's record keeps, as the record has them (either may be
/// missing: a build by a gib without the check, or a pulled image).
#[derive(Debug, Clone, Default)]
struct Checks {
    lint: Option<Value>,
    audit: Option<Value>,
}

impl Checks {
    /// The lint report kept in the record, and the audit report stored as the image's
    /// artifact (see `build::audit`).
    fn of(cache: &crate::cache::Cache, record: &BuiltImage) -> Result<Checks> {
        let json = serde_json::to_value(record).unwrap_or(Value::Null);
        let store = crate::oci::blob::BlobStore::open(&cache.dir("blobs")?)?;
        let audit = crate::build::audit::stored_report(&store, record)?
            .map(serde_json::to_value)
            .transpose()?;
        Ok(Checks {
            lint: json.get("lint").filter(|v| !v.is_null()).cloned(),
            audit,
        })
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for (title, section) in [("lint", &self.lint), ("audit", &self.audit)] {
            out.push_str(&format!("\n{title}:\n"));
            let Some(section) = section else {
                out.push_str(&format!("  no {title} results in this build\n"));
                continue;
            };
            let rows = findings(section);
            if rows.is_empty() {
                out.push_str("  nothing found\n");
            }
            for row in rows {
                let values: Vec<&str> = row.iter().map(|(_, v)| v.as_str()).collect();
                out.push_str(&format!("  {}\n", values.join("  ")));
            }
        }
        out
    }
}

/// The keys a finding's columns come first in, when it has them; the rest follow by name.
const COLUMN_ORDER: &[&str] = &[
    "severity",
    "id",
    "glsa",
    "kind",
    "title",
    "package",
    "installed",
    "fixed",
    "path",
    "detail",
    "reason",
];

/// The findings of a lint or audit report as rows of `(key, value)`: the objects of its
/// first list of objects (`findings`, `hits`…), each with its scalar fields in
/// [`COLUMN_ORDER`]. Read generically, so a report's new fields show without a change here.
fn findings(section: &Value) -> Vec<Vec<(String, String)>> {
    let list = match section {
        Value::Array(list) => Some(list),
        Value::Object(map) => map.values().find_map(|v| match v {
            Value::Array(list) if list.iter().all(Value::is_object) && !list.is_empty() => {
                Some(list)
            }
            _ => None,
        }),
        _ => None,
    };
    let Some(list) = list else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|finding| {
            let mut row: Vec<(String, String)> = finding
                .iter()
                .filter_map(|(key, value)| {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((key.clone(), text))
                })
                .collect();
            let rank = |key: &str| {
                COLUMN_ORDER
                    .iter()
                    .position(|k| *k == key)
                    .unwrap_or(COLUMN_ORDER.len())
            };
            row.sort_by(|a, b| rank(&a.0).cmp(&rank(&b.0)).then(a.0.cmp(&b.0)));
            row
        })
        .collect()
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

    #[test]
    fn findings_are_read_from_the_reports_list_in_column_order() {
        let lint = serde_json::json!({
            "checked": {"files": 3},
            "findings": [{
                "path": "/usr/bin/greet",
                "kind": "missing_library",
                "severity": "error",
                "detail": "libgreet.so.1",
            }],
            "ignored": 0,
        });
        let rows = findings(&lint);
        let values: Vec<&str> = rows[0].iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "error",
                "missing_library",
                "/usr/bin/greet",
                "libgreet.so.1"
            ]
        );
        let checks = Checks {
            lint: Some(lint),
            audit: None,
        };
        let text = checks.text();
        assert!(
            text.contains("lint:\n  error  missing_library  /usr/bin/greet  libgreet.so.1\n"),
            "{text}"
        );
        assert!(
            text.contains("audit:\n  no audit results in this build\n"),
            "{text}"
        );
        assert!(findings(&serde_json::json!({"findings": []})).is_empty());
    }
}
