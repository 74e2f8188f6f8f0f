//! The module map as a test: every top-level module of `src/` sits on one layer, and a module
//! names (`crate::…`) only modules on layers below its own, so there is no import cycle and no
//! arrow that runs back up. A new module must be given its layer here.

use std::collections::BTreeSet;
use std::path::Path;

/// The layers, top first. A module may import any module of a lower layer, none of its own or
/// a higher one.
const LAYERS: &[&[&str]] = &[
    // The command line: parses arguments, prints outcomes.
    &["cli"],
    // Runs a plan: builds, reuses or pulls each image, then the outputs.
    &["build"],
    // Where finished images go: OCI layout, archive, registry push.
    &["output"],
    // What to build, in which order, with which Portage files; gib.lock, the inputs pinned.
    &["plan", "lock"],
    // gib.yaml, read and checked.
    &["config"],
    // The inputs: the stage3, the ebuild repositories.
    &["stage3", "repository"],
    // The work run inside gib's user namespace, named in one list.
    &["jobs"],
    // emerge in the builder.
    &["emerge"],
    // Finishing a root: accounts, files, changes over the parent, usage, SBOM documents.
    &["rootfs"],
    // The registry client.
    &["registry"],
    // OCI bytes: the spec vocabulary, layers, images, blobs.
    &["oci"],
    // Gentoo knowledge: atoms, versions, the package database, licenses, Portage text.
    &["gentoo"],
    // Tarballs unpacked without trusting them.
    &["tarball"],
    // OpenPGP signatures and keys.
    &["openpgp"],
    // Downloads with retries and checksums.
    &["download"],
    // The one HTTP agent configuration and its bounds.
    &["http"],
    // The cache directory: entries, locks, kinds.
    &["cache"],
    // Namespaces, mounts, id maps, the helper protocol, symlink-safe file access.
    &["sandbox"],
    // Ground floor: the shell contract of rootfs-tools/, the terminal.
    &["rootfs_tools", "printer"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level modules that `text` (Rust source, comments dropped) names as `crate::X`.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b, c::{..}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => item.push(c),
                }
            }
            items.push(item);
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn modules_import_only_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for entry in walk(&src) {
        let relative = entry.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            wrong.push(format!("{module} is on no layer (add it to LAYERS)"));
            continue;
        };
        let text = std::fs::read_to_string(&entry).unwrap();
        // A file's unit tests (its trailing `#[cfg(test)]` module) may use any module.
        let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
        for import in imports(code) {
            if import == module {
                continue;
            }
            match layer_of(&import) {
                None => wrong.push(format!("{}: crate::{import} is no module", entry.display())),
                Some(layer) if layer <= own => wrong.push(format!(
                    "{} imports {import}, which is not below {module}",
                    relative.display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_groups_and_paths_but_not_comments() {
    let text = "use crate::oci::spec::Digest;\nuse crate::{cache::Cache, printer::{Printer, Hint}, sandbox};\n// crate::cli is only mentioned\nlet x = crate::http::Limits::default();\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["cache", "http", "oci", "printer", "sandbox"]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
