//! `gib __registry push|pull` (feature `test-hooks`): the registry client on its own, for
//! the integration tests and the push benchmark. Hidden; users push with `gib build --push` and `gib push`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::oci::spec::{Descriptor, Digest, Platform};
use crate::printer::UserError;
use crate::registry::{Client, Reference, RegistryOptions, pull_image, push_image};

#[derive(Args, Debug)]
pub struct RegistryArgs {
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Push the manifest `<MANIFEST_DIGEST>` and its blobs from `<BLOBS_DIR>/sha256/`.
    Push {
        blobs_dir: PathBuf,
        manifest_digest: String,
        /// `host[:port]/repository[:tag]`; the tag is pushed with the `--tag`s.
        reference: String,
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// A repository of the same registry that may hold some of the blobs.
        #[arg(long = "mount-from", value_name = "REF")]
        mount_from: Vec<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Pull `<REFERENCE>` for a platform into `<BLOBS_DIR>/sha256/`.
    Pull {
        reference: String,
        blobs_dir: PathBuf,
        /// `os/arch[/variant]` [default: this machine's].
        #[arg(long)]
        platform: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

#[derive(Args, Debug)]
pub struct ConnectionArgs {
    /// The CA certificate (PEM) of the reference's registry.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Talk plain HTTP to the reference's registry.
    #[arg(long)]
    plain_http: bool,
    /// Upload in PATCH chunks of this many bytes.
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<u64>,
    /// Another host (a token server) that may be talked to over plain HTTP, as
    /// `plain_http: true` under gib.yaml's `registries:` says.
    #[arg(long = "plain-http-host", value_name = "HOST[:PORT]")]
    plain_http_hosts: Vec<String>,
}

impl ConnectionArgs {
    fn client(self, reference: &Reference) -> Client {
        let plain = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        self.plain_http_hosts
            .iter()
            .fold(Client::new(), |client, host| {
                client.with_registry(host, plain.clone())
            })
            .with_registry(
                &reference.registry,
                RegistryOptions {
                    ca_certificate: self.ca,
                    plain_http: self.plain_http,
                    chunk_size: self.chunk_size,
                },
            )
    }
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Reference::parse(text).map_err(|e| UserError::new(e).into())
}

pub fn run(args: RegistryArgs) -> anyhow::Result<ExitCode> {
    let json = match args.command {
        RegistryCommand::Push {
            blobs_dir,
            manifest_digest,
            reference,
            mut tags,
            mount_from,
            connection,
        } => {
            let target = parse_reference(&reference)?;
            let digest = Digest::parse(&manifest_digest).map_err(UserError::new)?;
            let mount_from = mount_from
                .iter()
                .map(|r| parse_reference(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if let Some(tag) = &target.tag
                && !tags.contains(tag)
            {
                tags.insert(0, tag.clone());
            }
            let manifest = Descriptor::of_manifest_blob(&blobs_dir, &digest)?;
            let client = connection.client(&target);
            let report = push_image(
                &client,
                &blobs_dir,
                &manifest,
                &target,
                &tags,
                &mount_from,
                &(),
            )?;
            serde_json::to_string_pretty(&report)?
        }
        RegistryCommand::Pull {
            reference,
            blobs_dir,
            platform,
            connection,
        } => {
            let reference = parse_reference(&reference)?;
            let platform = match platform {
                Some(p) => Platform::parse(&p).map_err(UserError::new)?,
                None => Platform::host(),
            };
            let client = connection.client(&reference);
            let pulled = pull_image(&client, &reference, &platform, &blobs_dir)?;
            serde_json::to_string_pretty(&pulled)?
        }
    };
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
