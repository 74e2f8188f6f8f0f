//! The handshake between gib and its sandbox helper: typed messages, one JSON line each,
//! over two pipes (gib -> helper, helper and PID 1 -> gib).

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{Exit, IdMode, SandboxSpec};

#[derive(Debug, Serialize, Deserialize)]
pub enum ToHelper {
    /// What to run; the helper unshares on receipt.
    Start {
        spec: Box<SandboxSpec>,
        id_mode: IdMode,
    },
    /// The id maps are written: become root inside and go on.
    Mapped,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ToParent {
    /// The namespaces exist: write the id maps of the helper's pid.
    Unshared,
    /// Setting up or starting the command failed (with a hint for the user, if any).
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// The command ended.
    Exited(Exit),
}

pub fn send<T: Serialize>(to: &mut impl Write, message: &T) -> Result<()> {
    let mut line = serde_json::to_vec(message).context("cannot encode a sandbox message")?;
    line.push(b'\n');
    to.write_all(&line)
        .and_then(|()| to.flush())
        .context("cannot talk to the sandbox helper")
}

/// The next message, or `None` when the other side closed the pipe.
pub fn receive<T: DeserializeOwned>(from: &mut impl BufRead) -> Result<Option<T>> {
    let mut line = String::new();
    let n = from
        .read_line(&mut line)
        .context("cannot read from the sandbox helper")?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .with_context(|| format!("garbled sandbox message {:?}", line.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Network;

    #[test]
    fn messages_round_trip_one_line_each() {
        let spec = SandboxSpec {
            root: None,
            mounts: Vec::new(),
            network: Network::None,
            hostname: "h".into(),
            command: vec!["/bin/true".into()],
            env: vec![("A".into(), "b c".into())],
            cwd: "/".into(),
            interactive: false,
            user: None,
        };
        let mut wire = Vec::new();
        send(
            &mut wire,
            &ToHelper::Start {
                spec: Box::new(spec.clone()),
                id_mode: IdMode::Single { uid: 1, gid: 2 },
            },
        )
        .unwrap();
        send(&mut wire, &ToParent::Exited(Exit::Signal(15))).unwrap();
        assert_eq!(wire.iter().filter(|b| **b == b'\n').count(), 2);
        let mut reader = std::io::BufReader::new(&wire[..]);
        match receive::<ToHelper>(&mut reader).unwrap() {
            Some(ToHelper::Start { spec: got, id_mode }) => {
                assert_eq!(*got, spec);
                assert_eq!(id_mode, IdMode::Single { uid: 1, gid: 2 });
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            receive::<ToParent>(&mut reader).unwrap(),
            Some(ToParent::Exited(Exit::Signal(15)))
        ));
        assert!(receive::<ToParent>(&mut reader).unwrap().is_none());
    }
}
