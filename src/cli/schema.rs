//! `gib schema`: print the JSON Schema of gib.yaml, for editors (yaml-language-server's
//! `# yaml-language-server: $schema=…` or its `yaml.schemas` setting).

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> Result<ExitCode> {
    let schema = crate::config::json_schema();
    let mut text = serde_json::to_string_pretty(&schema).context("cannot render the schema")?;
    text.push('\n');
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("cannot write the schema to stdout")?;
    Ok(ExitCode::SUCCESS)
}
