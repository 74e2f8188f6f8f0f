//! Images: layers stacked (on a parent image's, when there is one) into an OCI image config
//! and manifest, both stored as blobs.
//!
//! All JSON goes through `serde_json::Value`, whose maps are sorted (serde_json's
//! `preserve_order` must never be enabled), so digests never depend on hash-map order.
//! Timestamps come from the caller (SOURCE_DATE_EPOCH or 0), never from the clock.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::blob::BlobStore;
use super::layer::Layer;
use super::spec::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_CREATED, Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
    Platform,
};

/// The runtime settings of an image (what `docker run` uses), the one type for them: gib.yaml's
/// image keys deserialise into it, the plan carries it and the image config is written from
/// it. `None`/empty means "inherit from the parent image".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Runtime {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `8080/tcp`, `53/udp`, or `8080` (tcp).
    pub expose: Vec<String>,
    pub volumes: Vec<String>,
}

/// Everything needed to write an image.
#[derive(Debug, Clone)]
pub struct ImageRequest<'a> {
    pub parent: Option<&'a Image>,
    /// The image's own layers, base first (on top of the parent's).
    pub layers: Vec<Layer>,
    pub settings: Runtime,
    /// Seconds since the epoch for `created` (SOURCE_DATE_EPOCH, else 0).
    pub created: i64,
    /// What made each own layer, for the history (`created_by`).
    pub created_by: String,
    /// Extra manifest annotations (ref.name, version, source, revision, …).
    pub annotations: BTreeMap<String, String>,
    /// The platform its binaries are for.
    pub platform: Platform,
}

/// A stored image: its manifest and config (as blobs) and what its children build on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// The config as written, for children to inherit from.
    pub config_json: Value,
}

/// Write the config and manifest of an image into `store`.
pub fn write_image(store: &BlobStore, request: &ImageRequest) -> Result<Image> {
    let created = rfc3339(request.created)?;
    let platform = &request.platform;
    let parent_config = request.parent.map(|p| &p.config_json);

    let mut diff_ids: Vec<Value> = parent_config
        .and_then(|c| c.pointer("/rootfs/diff_ids"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut history: Vec<Value> = parent_config
        .and_then(|c| c.get("history"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for layer in &request.layers {
        diff_ids.push(Value::String(layer.diff_id.to_string()));
        history.push(json!({
            "created": created,
            "created_by": request.created_by,
        }));
    }

    let inherited = parent_config
        .and_then(|c| c.get("config"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let runtime = runtime_config(inherited, &request.settings);
    let config = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config_bytes = serde_json::to_vec(&config).context("cannot encode the image config")?;
    let config_blob = store.put(&config_bytes)?;
    let config_desc = Descriptor::new(MEDIA_TYPE_CONFIG, config_blob.digest, config_blob.size);

    let mut layers: Vec<Descriptor> = request.parent.map(|p| p.layers.clone()).unwrap_or_default();
    layers.extend(
        request
            .layers
            .iter()
            .map(|l| Descriptor::new(&l.media_type, l.digest.clone(), l.size)),
    );

    let mut annotations = request.annotations.clone();
    annotations.insert(ANNOTATION_CREATED.to_string(), created);
    if let Some(parent) = request.parent {
        annotations
            .entry(ANNOTATION_BASE_DIGEST.to_string())
            .or_insert_with(|| parent.manifest.digest.to_string());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config_desc,
        "layers": layers,
        "annotations": annotations,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).context("cannot encode the manifest")?;
    let manifest_blob = store.put(&manifest_bytes)?;
    Ok(Image {
        manifest: Descriptor {
            platform: Some(platform.clone()),
            ..Descriptor::new(
                MEDIA_TYPE_MANIFEST,
                manifest_blob.digest,
                manifest_blob.size,
            )
        },
        config: config_desc,
        layers,
        config_json: config,
    })
}

/// The `config` object of an image config: the parent's, overridden by `settings`.
fn runtime_config(inherited: Value, settings: &Runtime) -> Value {
    let mut config = match inherited {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    if let Some(entrypoint) = &settings.entrypoint {
        config.insert("Entrypoint".into(), strings(entrypoint));
        // As with Dockerfiles: a new entrypoint drops the inherited command.
        if settings.cmd.is_none() {
            config.remove("Cmd");
        }
    }
    if let Some(cmd) = &settings.cmd {
        config.insert("Cmd".into(), strings(cmd));
    }
    if !settings.env.is_empty() {
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        if let Some(Value::Array(list)) = config.get("Env") {
            for item in list.iter().filter_map(Value::as_str) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                env.insert(key.to_string(), value.to_string());
            }
        }
        env.extend(settings.env.clone());
        let list: Vec<String> = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        config.insert("Env".into(), strings(&list));
    }
    if let Some(user) = &settings.user {
        config.insert("User".into(), Value::String(user.clone()));
    }
    if let Some(workdir) = &settings.workdir {
        config.insert("WorkingDir".into(), Value::String(workdir.clone()));
    }
    let mut merge_set = |key: &str, items: Vec<(String, Value)>| {
        if items.is_empty() {
            return;
        }
        let mut map = match config.remove(key) {
            Some(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        map.extend(items);
        config.insert(key.to_string(), Value::Object(map));
    };
    merge_set(
        "Labels",
        settings
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    merge_set(
        "ExposedPorts",
        settings
            .expose
            .iter()
            .map(|p| {
                let port = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                (port, json!({}))
            })
            .collect(),
    );
    merge_set(
        "Volumes",
        settings
            .volumes
            .iter()
            .map(|v| (v.clone(), json!({})))
            .collect(),
    );
    Value::Object(config)
}

/// An RFC 3339 UTC timestamp (`1970-01-01T00:00:00Z`).
pub fn rfc3339(epoch: i64) -> Result<String> {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .with_context(|| format!("timestamp out of range: {epoch}"))?;
    time.format(&time::format_description::well_known::Rfc3339)
        .with_context(|| format!("cannot format timestamp {epoch}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::spec::{Digest, MEDIA_TYPE_LAYER_GZIP};

    fn layer(n: u8) -> Layer {
        Layer {
            diff_id: Digest::of_bytes(&[n]),
            digest: Digest::of_bytes(&[n, 100]),
            size: 10 + u64::from(n),
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
        }
    }

    fn request<'a>(parent: Option<&'a Image>, layers: Vec<Layer>) -> ImageRequest<'a> {
        let mut settings = Runtime {
            cmd: Some(vec!["/bin/sh".into()]),
            ..Runtime::default()
        };
        settings.env.insert("B".into(), "2".into());
        settings.env.insert("A".into(), "1".into());
        settings.labels.insert("z".into(), "1".into());
        settings.labels.insert("a".into(), "2".into());
        settings.expose.push("8080".into());
        ImageRequest {
            parent,
            layers,
            settings,
            created: 0,
            created_by: "gib test".into(),
            annotations: BTreeMap::new(),
            platform: Platform::host(),
        }
    }

    #[test]
    fn config_and_manifest_parse_as_oci_and_are_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path()).unwrap();
        let image = write_image(&store, &request(None, vec![layer(1)])).unwrap();
        let manifest_text = std::fs::read(store.path(&image.manifest.digest)).unwrap();
        let manifest: oci_spec::image::ImageManifest =
            serde_json::from_slice(&manifest_text).unwrap();
        assert_eq!(manifest.layers().len(), 1);
        let config_text = std::fs::read(store.path(&image.config.digest)).unwrap();
        let config: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&config_text).unwrap();
        assert_eq!(config.rootfs().diff_ids().len(), 1);
        let text = String::from_utf8(config_text).unwrap();
        assert!(text.contains(r#""Env":["A=1","B=2"]"#), "{text}");
        assert!(text.contains(r#""Labels":{"a":"2","z":"1"}"#), "{text}");
        assert!(
            text.contains(r#""created":"1970-01-01T00:00:00Z""#),
            "{text}"
        );
        assert!(text.contains(r#""8080/tcp":{}"#), "{text}");
        // Same input, same digest.
        let again = write_image(&store, &request(None, vec![layer(1)])).unwrap();
        assert_eq!(again.manifest.digest, image.manifest.digest);
    }

    #[test]
    fn child_stacks_on_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path()).unwrap();
        let parent = write_image(&store, &request(None, vec![layer(1)])).unwrap();
        let mut child_request = request(Some(&parent), vec![layer(2)]);
        child_request.settings = Runtime {
            entrypoint: Some(vec!["/app".into()]),
            ..Runtime::default()
        };
        let child = write_image(&store, &child_request).unwrap();
        assert_eq!(child.layers.len(), 2);
        assert_eq!(child.layers[0], parent.layers[0]);
        let diff_ids = child.config_json.pointer("/rootfs/diff_ids").unwrap();
        assert_eq!(diff_ids.as_array().unwrap().len(), 2);
        assert_eq!(child.config_json["history"].as_array().unwrap().len(), 2);
        let runtime = &child.config_json["config"];
        assert_eq!(runtime["Entrypoint"], json!(["/app"]));
        assert!(
            runtime.get("Cmd").is_none(),
            "a new entrypoint drops the inherited cmd"
        );
        assert_eq!(runtime["Env"], json!(["A=1", "B=2"]));
    }
}
