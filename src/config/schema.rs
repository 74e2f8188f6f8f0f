//! The JSON Schema of gib.yaml (`gib schema`), for editors' YAML language servers.
//!
//! The keys and value types are the reader's own (`raw`, through schemars, which reads the
//! serde attributes); each key's description, type, default and example come from the
//! reference, docs/gib-yaml.md, compiled in, so hover text in an editor says what the
//! reference says. What needs more than one key (exactly one stage3 source, parents that
//! exist) is left to `load`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::raw::RawFile;

/// docs/gib-yaml.md: its tables give each key path's row.
const REFERENCE: &str = include_str!("../../docs/gib-yaml.md");

/// The JSON Schema (draft 2020-12) of gib.yaml.
pub fn json_schema() -> Value {
    let mut schema = schemars::schema_for!(RawFile).to_value();
    let descriptions = key_descriptions(REFERENCE);
    let mut properties = Vec::new();
    key_properties(&schema, &schema, "", "", &mut properties);
    for (path, pointer) in properties {
        if let (Some(text), Some(Value::Object(property))) =
            (descriptions.get(&path), schema.pointer_mut(&pointer))
        {
            property.insert("description".into(), text.clone().into());
        }
    }
    schema
}

/// Key path (`images.*.paths[].mode`) -> "meaning (type; default: …)" from the reference's
/// table rows `| `key` | type | default | meaning and example |`.
fn key_descriptions(reference: &str) -> BTreeMap<String, String> {
    reference
        .lines()
        .filter_map(|line| {
            let row = line.strip_prefix("| `")?.strip_suffix(" |")?;
            let cells: Vec<String> = row.split(" | ").map(|c| c.replace("\\|", "|")).collect();
            let [key, kind, default, meaning] = cells.as_slice() else {
                return None;
            };
            let key = key.strip_suffix('`')?;
            Some((
                key.to_string(),
                format!("{meaning} ({kind}; default: {default})"),
            ))
        })
        .collect()
}

/// Every key path of the schema with the JSON pointer of its property schema, following
/// `$ref`s into `$defs` (`*` for a map's entries, `[]` for a list's items).
fn key_properties(
    root: &Value,
    node: &Value,
    pointer: &str,
    path: &str,
    out: &mut Vec<(String, String)>,
) {
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let target = reference.trim_start_matches('#');
        if let Some(def) = root.pointer(target) {
            key_properties(root, def, target, path, out);
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        for (i, sub) in node[combinator]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            key_properties(root, sub, &format!("{pointer}/{combinator}/{i}"), path, out);
        }
    }
    for (key, sub) in node["properties"].as_object().into_iter().flatten() {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let at = format!("{pointer}/properties/{key}");
        out.push((child.clone(), at.clone()));
        key_properties(root, sub, &at, &child, out);
    }
    if node["additionalProperties"].is_object() {
        let at = format!("{pointer}/additionalProperties");
        key_properties(
            root,
            &node["additionalProperties"],
            &at,
            &format!("{path}.*"),
            out,
        );
    }
    if node["items"].is_object() {
        let at = format!("{pointer}/items");
        key_properties(root, &node["items"], &at, &format!("{path}[]"), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_described() {
        let schema = json_schema();
        let mut properties = Vec::new();
        key_properties(&schema, &schema, "", "", &mut properties);
        assert!(properties.len() > 50, "{properties:?}");
        for (path, pointer) in properties {
            let description = schema.pointer(&pointer).and_then(|p| p.get("description"));
            assert!(
                description.is_some_and(Value::is_string),
                "{path} ({pointer})"
            );
        }
        let threads = &schema["$defs"]["RawBuild"]["properties"]["threads"]["description"];
        assert!(
            threads
                .as_str()
                .is_some_and(|t| t.contains("default: the machine's CPU count")),
            "{threads}"
        );
    }
}
