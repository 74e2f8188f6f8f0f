//! `gib graph`: the image DAG as mermaid (`graph TD`) or Graphviz dot, with `scratch` and
//! registry parents as nodes of their own. Reads the configuration only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use super::{GraphArgs, GraphFormat};
use crate::config::{self, Parent};
use crate::plan::Plan;

pub fn run(args: GraphArgs) -> anyhow::Result<ExitCode> {
    let config = config::load(&args.config.file)?;
    let plan = Plan::resolve(&config, &[])?;
    let edges = edges(&plan);
    let text = match args.format {
        GraphFormat::Mermaid => mermaid(&edges),
        GraphFormat::Dot => dot(&edges),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// A node of the drawing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Node {
    Scratch,
    Registry(String),
    Image(String),
}

impl Node {
    pub(super) fn label(&self) -> &str {
        match self {
            Node::Scratch => "scratch",
            Node::Registry(reference) => reference,
            Node::Image(name) => name,
        }
    }
}

/// `(parent, image)` for every image, in build order (`gib inspect --html` draws them too).
pub(super) fn edges(plan: &Plan) -> Vec<(Node, Node)> {
    plan.images
        .iter()
        .map(|image| {
            let parent = match &image.parent {
                Parent::Scratch => Node::Scratch,
                Parent::Image(name) => Node::Image(name.clone()),
                Parent::Registry(reference) => Node::Registry(reference.clone()),
            };
            (parent, Node::Image(image.name.clone()))
        })
        .collect()
}

/// The nodes in order of first appearance (parents before children), with mermaid ids:
/// image names may contain `.` and `-`, which mermaid ids may not.
fn node_ids(edges: &[(Node, Node)]) -> Vec<(Node, String)> {
    let mut ids: Vec<(Node, String)> = Vec::new();
    let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
    for node in edges.iter().flat_map(|(p, c)| [p, c]) {
        if ids.iter().any(|(n, _)| n == node) {
            continue;
        }
        let prefix = match node {
            Node::Scratch => "scratch",
            Node::Registry(_) => "registry",
            Node::Image(_) => "image",
        };
        let count = counters.entry(prefix).or_default();
        let id = if *node == Node::Scratch {
            "scratch".to_string()
        } else {
            format!("{prefix}{count}")
        };
        *count += 1;
        ids.push((node.clone(), id));
    }
    ids
}

fn mermaid(edges: &[(Node, Node)]) -> String {
    let ids = node_ids(edges);
    let id = |node: &Node| {
        ids.iter()
            .find(|(n, _)| n == node)
            .map_or("missing", |(_, id)| id.as_str())
            .to_string()
    };
    let mut out = String::from("graph TD\n");
    for (node, node_id) in &ids {
        let label = node.label().replace('"', "#quot;");
        // Stadium for scratch, parallelogram for registry parents, box for images.
        let shape = match node {
            Node::Scratch => format!("([\"{label}\"])"),
            Node::Registry(_) => format!("[/\"{label}\"/]"),
            Node::Image(_) => format!("[\"{label}\"]"),
        };
        let _ = writeln!(out, "  {node_id}{shape}");
    }
    for (parent, child) in edges {
        let _ = writeln!(out, "  {} --> {}", id(parent), id(child));
    }
    out
}

fn dot(edges: &[(Node, Node)]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("digraph gib {\n  rankdir=TB;\n  node [shape=box];\n");
    for (node, _) in node_ids(edges) {
        let attributes = match node {
            Node::Scratch => " [shape=ellipse, style=dashed]",
            Node::Registry(_) => " [shape=parallelogram, style=dashed]",
            Node::Image(_) => "",
        };
        let _ = writeln!(out, "  {}{attributes};", quote(node.label()));
    }
    for (parent, child) in edges {
        let _ = writeln!(
            out,
            "  {} -> {};",
            quote(parent.label()),
            quote(child.label())
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(Node, Node)> {
        vec![
            (
                Node::Registry("docker.io/library/alpine:3".into()),
                Node::Image("alpine-tools".into()),
            ),
            (Node::Scratch, Node::Image("base".into())),
            (Node::Image("base".into()), Node::Image("python".into())),
        ]
    }

    #[test]
    fn mermaid_text() {
        assert_eq!(
            mermaid(&sample()),
            "graph TD\n  registry0[/\"docker.io/library/alpine:3\"/]\n  image0[\"alpine-tools\"]\n  \
             scratch([\"scratch\"])\n  image1[\"base\"]\n  image2[\"python\"]\n  \
             registry0 --> image0\n  scratch --> image1\n  image1 --> image2\n"
        );
    }

    #[test]
    fn dot_text() {
        assert_eq!(
            dot(&sample()),
            "digraph gib {\n  rankdir=TB;\n  node [shape=box];\n  \
             \"docker.io/library/alpine:3\" [shape=parallelogram, style=dashed];\n  \"alpine-tools\";\n  \
             \"scratch\" [shape=ellipse, style=dashed];\n  \"base\";\n  \"python\";\n  \
             \"docker.io/library/alpine:3\" -> \"alpine-tools\";\n  \"scratch\" -> \"base\";\n  \
             \"base\" -> \"python\";\n}\n"
        );
    }
}
