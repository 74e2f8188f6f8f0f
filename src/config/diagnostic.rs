//! Errors that point into gib.yaml: `FILE:LINE:COLUMN: message` plus an optional hint, as a
//! `UserError` so the command line exits with 2.
//!
//! Also translates the YAML reader's errors (syntax, wrong type, unknown key) into the same
//! form, adding "did you mean" for misspelt keys.

use serde_saphyr::{Location, MessageFormatter, UserMessageFormatter};

use crate::printer::UserError;

/// Where a configuration is being read from, for error messages.
pub struct SourceFile {
    /// The file name as the user gave it (`gib.yaml`, `./x/gib.yaml`).
    pub label: String,
}

impl SourceFile {
    /// An error at a location of the file.
    pub fn error(&self, at: Location, message: impl AsRef<str>) -> anyhow::Error {
        UserError::new(self.located(at, message.as_ref())).into()
    }

    pub fn error_with_hint(
        &self,
        at: Location,
        message: impl AsRef<str>,
        hint: impl Into<String>,
    ) -> anyhow::Error {
        UserError::with_hint(self.located(at, message.as_ref()), hint)
    }

    fn located(&self, at: Location, message: &str) -> String {
        format!("{}: {message}", self.position(at))
    }

    /// `FILE:LINE:COLUMN`, for an error found once the file is loaded.
    pub fn position(&self, at: Location) -> String {
        if at == Location::UNKNOWN {
            // Only the YAML reader can fail without a position (e.g. invalid UTF-8).
            format!("{}:1:1", self.label)
        } else {
            format!("{}:{}:{}", self.label, at.line(), at.column())
        }
    }

    /// Translate an error of the YAML reader.
    pub fn yaml_error(&self, err: &serde_saphyr::Error) -> anyhow::Error {
        let location = err.location().unwrap_or(Location::UNKNOWN);
        let mut inner = err.without_snippet();
        if let serde_saphyr::Error::AliasError { error, .. } = inner {
            inner = error.without_snippet();
        }
        match inner {
            serde_saphyr::Error::SerdeUnknownField {
                field, expected, ..
            } => {
                let message = format!("unknown key `{field}`");
                match did_you_mean(field, expected.iter().copied()) {
                    Some(best) => {
                        self.error_with_hint(location, message, format!("did you mean `{best}`?"))
                    }
                    None => self.error_with_hint(
                        location,
                        message,
                        format!("the keys allowed here are: {}", expected.join(", ")),
                    ),
                }
            }
            serde_saphyr::Error::SerdeMissingField { field, .. } => {
                self.error(location, format!("missing key `{field}`"))
            }
            serde_saphyr::Error::SerdeInvalidType {
                unexpected,
                expected,
                ..
            } => self.error(location, format!("expected {expected}, found {unexpected}")),
            serde_saphyr::Error::DuplicateMappingKey { key: Some(key), .. } => {
                self.error(location, format!("duplicate key `{key}`"))
            }
            serde_saphyr::Error::Unexpected { expected, .. } => {
                // The reader names YAML events; say what the user has to write instead.
                let expected = match *expected {
                    "string scalar" | "scalar" | "value" => {
                        "a single value (not a list or mapping)"
                    }
                    "mapping start" => "a mapping (`key: value` lines)",
                    "sequence start" => "a list",
                    other => other,
                };
                self.error(location, format!("expected {expected}"))
            }
            serde_saphyr::Error::InvalidScalar { ty, .. } => {
                let expected = match *ty {
                    "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
                    "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
                    "bool" | "boolean" => "true or false",
                    other => other,
                };
                self.error(location, format!("expected {expected}"))
            }
            serde_saphyr::Error::Eof { .. } if location == Location::UNKNOWN => {
                self.error(location, "the file is empty")
            }
            other => {
                let message: String = UserMessageFormatter
                    .format_message(other)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                self.error(location, message)
            }
        }
    }
}

/// The candidate closest to `given`, if it is close enough to be a plausible typo: a few
/// edits away (transpositions count as one), or sharing most of its prefix.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max_edits = (given.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| {
            let edits = strsim::damerau_levenshtein(given, candidate);
            let similarity = strsim::jaro_winkler(given, candidate);
            (edits, similarity, candidate)
        })
        .filter(|(edits, similarity, _)| *edits <= max_edits || *similarity > 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["stage3", "portage", "images", "registry"];
        assert_eq!(did_you_mean("imges", keys), Some("images"));
        assert_eq!(did_you_mean("registy", keys), Some("registry"));
        assert_eq!(did_you_mean("stage", keys), Some("stage3"));
        assert_eq!(did_you_mean("zzz", keys), None);
        assert_eq!(did_you_mean("gti", ["git", "rsync", "none"]), Some("git"));
        assert_eq!(did_you_mean("ww", ["www"]), Some("www"));
    }
}
