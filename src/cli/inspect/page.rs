//! `gib inspect --html FILE`: one self-contained HTML page for the images of gib.yaml — the
//! image DAG, each image's size as a treemap by layer and package, what trimming removed, the
//! biggest files, and the lint and audit results of the last build.
//!
//! The page is `page.html` with the data inlined as JSON; its script draws everything with
//! DOM text nodes (a file name from an image is data, never markup) and its
//! Content-Security-Policy lets it load nothing, so viewing it makes no network request.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::super::graph::{Node, edges};
use super::{Checks, InspectArgs};
use crate::build::latest_record;
use crate::build::report::image_usage_in_namespace;
use crate::cache::Cache;
use crate::config::{self, Parent};
use crate::plan::Plan;
use crate::printer::{Printer, UserError};
use crate::rootfs::usage::{FileUsage, PackageUsage};

/// The page, with `/*GIB-DATA*/` where the data goes.
const TEMPLATE: &str = include_str!("page.html");
const DATA_SLOT: &str = "/*GIB-DATA*/";

/// What the page's script draws.
#[derive(Debug, Serialize)]
struct PageData {
    /// gib.yaml, as given.
    config: String,
    gib: &'static str,
    edges: Vec<Edge>,
    images: Vec<PageImage>,
}

#[derive(Debug, Serialize)]
struct Edge {
    parent: PageNode,
    child: PageNode,
}

#[derive(Debug, Serialize)]
struct PageNode {
    label: String,
    /// `image`, `scratch` or `registry`.
    kind: &'static str,
}

impl From<&Node> for PageNode {
    fn from(node: &Node) -> PageNode {
        PageNode {
            label: node.label().to_string(),
            kind: match node {
                Node::Scratch => "scratch",
                Node::Registry(_) => "registry",
                Node::Image(_) => "image",
            },
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct PageImage {
    name: String,
    /// Whether the cache holds a build of it (the rest is empty when not).
    built: bool,
    digest: String,
    references: Vec<String>,
    stored_bytes: u64,
    /// The compressed size of each layer blob of the image, base first.
    blobs: Vec<u64>,
    total_bytes: u64,
    total_files: u64,
    /// The image's own layer dir, then its ancestors'.
    layers: Vec<PageLayer>,
    trimmed: Vec<FileUsage>,
    trimmed_bytes: u64,
    largest_files: Vec<FileUsage>,
    lint: Option<serde_json::Value>,
    audit: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct PageLayer {
    /// The image whose build made this layer dir (a registry parent: its reference).
    image: String,
    total_bytes: u64,
    unowned_bytes: u64,
    packages: Vec<PackageUsage>,
}

/// Write the page for `args` (its image and that image's ancestors, or every image of
/// gib.yaml) to `file`.
pub(super) fn write(args: &InspectArgs, cache: &Cache, file: &Path) -> Result<ExitCode> {
    let config = config::load(&args.config.file)?;
    let plan = Plan::resolve(&config, &[])?;
    let selected = selected(&plan, args.image.as_deref())?;
    let mut images = Vec::new();
    for name in &selected {
        images.push(page_image(&plan, cache, name, args.largest)?);
    }
    let data = PageData {
        config: args.config.file.display().to_string(),
        gib: env!("CARGO_PKG_VERSION"),
        edges: edges(&plan)
            .iter()
            .filter(|(_, child)| selected.iter().any(|s| s == child.label()))
            .map(|(parent, child)| Edge {
                parent: parent.into(),
                child: child.into(),
            })
            .collect(),
        images,
    };
    // Beside the file, also when it is named relative to the working directory.
    let absolute =
        std::path::absolute(file).with_context(|| format!("cannot write {}", file.display()))?;
    crate::output::layout::write_atomically(&absolute, render(&data)?.as_bytes())?;
    Printer::new(false).status("Wrote", &format!("page {}", file.display()));
    Ok(ExitCode::SUCCESS)
}

/// `image` and its ancestors in gib.yaml (parents first), or every image.
fn selected(plan: &Plan, image: Option<&str>) -> Result<Vec<String>> {
    let Some(image) = image else {
        return Ok(plan.images.iter().map(|i| i.name.clone()).collect());
    };
    let mut chain = Vec::new();
    let mut next = Some(image.to_string());
    while let Some(name) = next {
        let Some(found) = plan.images.iter().find(|i| i.name == name) else {
            return Err(
                UserError::new(format!("no image {name} in {}", plan.file.display())).into(),
            );
        };
        next = match &found.parent {
            Parent::Image(parent) => Some(parent.clone()),
            Parent::Scratch | Parent::Registry(_) => None,
        };
        chain.push(name);
    }
    chain.reverse();
    Ok(chain)
}

/// Who made each layer dir of `name`'s image, nearest first: it, its parent, and so on.
fn layer_names(plan: &Plan, name: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut next = Some(name.to_string());
    while let Some(current) = next {
        let parent = plan
            .images
            .iter()
            .find(|i| i.name == current)
            .map(|i| i.parent.clone());
        names.push(current);
        next = match parent {
            Some(Parent::Image(parent)) => Some(parent),
            Some(Parent::Registry(reference)) => {
                names.push(reference);
                None
            }
            _ => None,
        };
    }
    names
}

/// The page's view of the last build of `name` (an unbuilt image when the cache has none).
fn page_image(plan: &Plan, cache: &Cache, name: &str, largest: usize) -> Result<PageImage> {
    let Some(record) = latest_record(cache, name, None)? else {
        return Ok(PageImage {
            name: name.to_string(),
            ..PageImage::default()
        });
    };
    let report = image_usage_in_namespace(cache, &record, largest)?;
    let checks = Checks::of(cache, &record)?;
    let owners = layer_names(plan, name);
    let layers = report
        .usage
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| PageLayer {
            image: owners
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("layer {}", index + 1)),
            total_bytes: layer.total_bytes,
            unowned_bytes: layer.unowned_bytes,
            packages: layer.packages.clone(),
        })
        .collect();
    Ok(PageImage {
        name: name.to_string(),
        built: true,
        digest: report.digest,
        references: record.references.clone(),
        stored_bytes: report.stored_bytes,
        blobs: record.image.layers.iter().map(|l| l.size).collect(),
        total_bytes: report.usage.total_bytes,
        total_files: report.usage.total_files,
        layers,
        trimmed: report.trimmed,
        trimmed_bytes: report.trimmed_bytes,
        largest_files: report.usage.largest_files,
        lint: checks.lint,
        audit: checks.audit,
    })
}

/// The page with `data` inlined. JSON puts `<`, `>` and `&` only inside strings, where
/// their `\u` escapes mean the same: so no text of the data can close the script element.
fn render(data: &PageData) -> Result<String> {
    let json = serde_json::to_string(data).context("cannot encode the page's data")?;
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    if !TEMPLATE.contains(DATA_SLOT) {
        anyhow::bail!("gib bug: page.html has no {DATA_SLOT}");
    }
    Ok(TEMPLATE.replacen(DATA_SLOT, &json, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_text_of_the_data_can_end_the_script() {
        let data = PageData {
            config: "gib.yaml".into(),
            gib: "0",
            edges: Vec::new(),
            images: vec![PageImage {
                name: "</script><script>alert(1)</script>&amp;".into(),
                ..PageImage::default()
            }],
        };
        let page = render(&data).unwrap();
        let inlined = page
            .split("id=\"gib-data\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        assert!(
            !inlined.contains('<') && !inlined.contains('&'),
            "{inlined}"
        );
        let back: serde_json::Value = serde_json::from_str(inlined).unwrap();
        assert_eq!(
            back["images"][0]["name"],
            "</script><script>alert(1)</script>&amp;"
        );
    }
}
