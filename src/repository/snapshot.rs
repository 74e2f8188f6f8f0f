//! When a repository tree was made, and which snapshot a `pin` asks for.
//!
//! The Gentoo tree says when it was made in `metadata/timestamp.chk` (RFC 2822, e.g.
//! `Fri, 20 Nov 2026 00:45:01 +0000`); git mirrors also carry `metadata/timestamp.commit`.
//! That time goes into image annotations and into the tag rule's snapshot date (`20261120`).

use std::fmt;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::macros::format_description;

use crate::printer::UserError;

/// A snapshot's time: seconds since the epoch and its UTC date as `YYYYMMDD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTime {
    pub epoch: i64,
    /// `YYYYMMDD` (UTC): the tag rule's snapshot date.
    pub date: String,
}

impl SnapshotTime {
    pub fn from_epoch(epoch: i64) -> Option<SnapshotTime> {
        let at = OffsetDateTime::from_unix_timestamp(epoch).ok()?;
        let date = at.format(format_description!("[year][month][day]")).ok()?;
        Some(SnapshotTime { epoch, date })
    }

    /// `metadata/timestamp.chk`, else `metadata/timestamp.commit`, of a tree.
    pub fn of_tree(tree: &Path) -> Option<SnapshotTime> {
        let metadata = tree.join("metadata");
        std::fs::read_to_string(metadata.join("timestamp.chk"))
            .ok()
            .and_then(|text| parse_timestamp_chk(&text))
            .or_else(|| {
                std::fs::read_to_string(metadata.join("timestamp.commit"))
                    .ok()
                    .and_then(|text| parse_timestamp_commit(&text))
            })
    }

    /// A snapshot directory name: `YYYYMMDDTHHMMSSZ`.
    pub fn id(&self) -> String {
        OffsetDateTime::from_unix_timestamp(self.epoch)
            .ok()
            .and_then(|at| {
                at.format(format_description!(
                    "[year][month][day]T[hour][minute][second]Z"
                ))
                .ok()
            })
            .unwrap_or_else(|| self.epoch.to_string())
    }
}

/// `Fri, 20 Nov 2026 00:45:01 +0000` (the first line).
fn parse_timestamp_chk(text: &str) -> Option<SnapshotTime> {
    let line = text.lines().next()?.trim();
    let at = OffsetDateTime::parse(line, &Rfc2822).ok()?;
    SnapshotTime::from_epoch(at.unix_timestamp())
}

/// The first token that is an epoch (9 to 11 digits) or an RFC 3339 time; the file is
/// `<commit> <epoch> <date>`.
fn parse_timestamp_commit(text: &str) -> Option<SnapshotTime> {
    for token in text.split_whitespace() {
        if (9..=11).contains(&token.len()) && token.chars().all(|c| c.is_ascii_digit()) {
            return token.parse().ok().and_then(SnapshotTime::from_epoch);
        }
        if let Ok(at) = OffsetDateTime::parse(token, &Rfc3339) {
            return SnapshotTime::from_epoch(at.unix_timestamp());
        }
    }
    None
}

/// `pin:` of an ebuild repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// The last snapshot of that UTC day, `YYYYMMDD`.
    Date(String),
    /// A git commit (7 to 64 hex digits, lowercase).
    Commit(String),
}

impl Pin {
    /// `2026-11-20` or `20261120` is a date; 7 to 64 hex digits a commit.
    pub fn parse(text: &str) -> Result<Pin> {
        let trimmed = text.trim();
        let compact = trimmed.replace('-', "");
        let dashed_ok = !trimmed.contains('-') || trimmed.len() == 10;
        if compact.len() == 8 && dashed_ok && is_date(&compact) {
            return Ok(Pin::Date(compact));
        }
        if (7..=64).contains(&trimmed.len()) && trimmed.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Pin::Commit(trimmed.to_ascii_lowercase()));
        }
        Err(UserError::with_hint(
            format!("pin `{text}` is neither a date nor a commit"),
            "write a snapshot date as 2026-11-20 or a git commit as its hex id",
        ))
    }

    /// How the pin is recorded beside a snapshot.
    pub fn key(&self) -> String {
        match self {
            Pin::Date(date) => format!("date:{date}"),
            Pin::Commit(commit) => format!("commit:{commit}"),
        }
    }

    /// `YYYY-MM-DD` of a date pin.
    pub fn dashed_date(&self) -> Option<String> {
        match self {
            Pin::Date(d) => Some(format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8])),
            Pin::Commit(_) => None,
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pin::Date(date) => write!(f, "{date}"),
            Pin::Commit(commit) => write!(f, "{commit}"),
        }
    }
}

fn is_date(compact: &str) -> bool {
    if !compact.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        compact[..4].parse::<i32>(),
        compact[4..6].parse::<u8>(),
        compact[6..8].parse::<u8>(),
    ) else {
        return false;
    };
    let Ok(month) = time::Month::try_from(month) else {
        return false;
    };
    (1990..=2200).contains(&year) && time::Date::from_calendar_date(year, month, day).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_chk_is_rfc_2822() {
        let t = parse_timestamp_chk("Fri, 20 Nov 2026 00:45:01 +0000\n").unwrap();
        assert_eq!(t.date, "20261120");
        assert_eq!(t.id(), "20261120T004501Z");
        assert_eq!(SnapshotTime::from_epoch(t.epoch).unwrap(), t);
    }

    #[test]
    fn timestamp_commit_has_an_epoch() {
        let text = "0123abcd 1795135501 2026-11-20T00:45:01+00:00\n";
        assert_eq!(parse_timestamp_commit(text).unwrap().date, "20261120");
    }

    #[test]
    fn pins_are_dates_or_commits() {
        assert_eq!(
            Pin::parse("2026-11-20").unwrap(),
            Pin::Date("20261120".into())
        );
        assert_eq!(
            Pin::parse("20261120").unwrap(),
            Pin::Date("20261120".into())
        );
        assert_eq!(
            Pin::parse("ABCDEF1").unwrap(),
            Pin::Commit("abcdef1".into())
        );
        assert!(Pin::parse("2026-13-40").is_err());
        assert!(Pin::parse("latest").is_err());
        assert_eq!(
            Pin::parse("20261120").unwrap().dashed_date().unwrap(),
            "2026-11-20"
        );
    }
}
