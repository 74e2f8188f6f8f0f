//! An image's `accounts:` and `paths:`.

use super::*;

impl Validator<'_> {
    pub(super) fn accounts(&self, raw: S<RawAccounts>) -> Checked<Accounts> {
        let r = raw.value;
        let mut groups = Vec::new();
        let mut group_names = BTreeSet::new();
        for g in r.groups.unwrap_or_default() {
            let g = g.value;
            self.new_account_name(&mut group_names, &g.name, "group")?;
            groups.push(Group {
                name: g.name.value,
                gid: g.gid,
            });
        }
        let mut users = Vec::new();
        let mut user_names = BTreeSet::new();
        for u in r.users.unwrap_or_default() {
            let u = u.value;
            self.new_account_name(&mut user_names, &u.name, "user")?;
            let home = u
                .home
                .as_ref()
                .map(|h| self.absolute(h, "home"))
                .transpose()?;
            let shell = u
                .shell
                .as_ref()
                .map(|s| self.absolute(s, "shell"))
                .transpose()?;
            users.push(User {
                name: u.name.value,
                uid: u.uid,
                // One group per user, with the user's id, is the usual convention.
                gid: u.gid.unwrap_or(u.uid),
                home,
                shell,
            });
        }
        let run_as = match r.run_as {
            None => None,
            Some(run_as) => {
                let value = run_as.value.trim();
                let numeric =
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b':');
                if !numeric && !user_names.contains(value) {
                    let message = format!("`run_as: {value}` names no user of `accounts.users`");
                    return Err(
                        match did_you_mean(value, user_names.iter().map(String::as_str)) {
                            Some(best) => self.source.error_with_hint(
                                run_as.referenced,
                                message,
                                format!("did you mean `{best}`?"),
                            ),
                            None => self.source.error(run_as.referenced, message),
                        },
                    );
                }
                Some(value.to_string())
            }
        };
        Ok(Accounts {
            users,
            groups,
            run_as,
        })
    }

    /// A valid user or group name not seen before in its list.
    pub(super) fn new_account_name(
        &self,
        seen: &mut BTreeSet<String>,
        name: &S<String>,
        what: &str,
    ) -> Checked<()> {
        self.account_name(name)?;
        if !seen.insert(name.value.clone()) {
            return Err(self.source.error(
                name.referenced,
                format!("{what} `{}` is listed twice", name.value),
            ));
        }
        Ok(())
    }

    pub(super) fn account_name(&self, name: &S<String>) -> Checked<()> {
        let n = name.value.as_str();
        let valid = n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if valid {
            Ok(())
        } else {
            Err(self.source.error_with_hint(
                name.referenced,
                format!("`{n}` is not a valid user or group name"),
                "names start with a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`",
            ))
        }
    }

    pub(super) fn path_entry(&self, raw: S<RawPath>) -> Checked<PathEntry> {
        let at = raw.referenced;
        let r = raw.value;
        let path = self.absolute(&r.path, "path")?;
        let mode = r
            .mode
            .as_ref()
            .map(|m| match &m.value.0 {
                Ok(text) => parse_mode(text).ok_or_else(|| {
                    self.source.error_with_hint(
                        m.referenced,
                        format!("`{text}` is not an octal mode"),
                        "e.g. \"0755\" or \"0644\"",
                    )
                }),
                Err(number) => Err(self.source.error_with_hint(
                    m.referenced,
                    format!("the mode {number} must be a quoted octal string"),
                    format!("write `mode: \"0{number}\"`; YAML reads an unquoted 0755 as the decimal number 755"),
                )),
            })
            .transpose()?;
        let unexpected = |value: &Option<S<String>>, key: &str, kind: &str| -> Checked<()> {
            match value {
                Some(v) => Err(self.source.error(
                    v.referenced,
                    format!("`{key}` does not apply to `type: {kind}`"),
                )),
                None => Ok(()),
            }
        };
        let kind = match r.kind.value.trim() {
            "directory" => {
                unexpected(&r.source, "source", "directory")?;
                unexpected(&r.target, "target", "directory")?;
                PathKind::Directory
            }
            "file" => {
                unexpected(&r.target, "target", "file")?;
                let source = r.source.as_ref().ok_or_else(|| {
                    self.source.error(
                        at,
                        format!("`{path}` is a file: it needs `source:`, the file to copy"),
                    )
                })?;
                let resolved = self.existing_path(source, "source")?;
                if !resolved.is_file() {
                    return Err(self.source.error(
                        source.referenced,
                        format!("source `{}` is not a file", source.value),
                    ));
                }
                PathKind::File { source: resolved }
            }
            "symlink" => {
                unexpected(&r.source, "source", "symlink")?;
                if let Some(m) = &r.mode {
                    return Err(self
                        .source
                        .error(m.referenced, "`mode` does not apply to `type: symlink`"));
                }
                let target = r.target.as_ref().ok_or_else(|| {
                    self.source
                        .error(at, format!("`{path}` is a symlink: it needs `target:`"))
                })?;
                if target.value.is_empty() {
                    return Err(self.source.error(target.referenced, "`target` is empty"));
                }
                PathKind::Symlink {
                    target: target.value.clone(),
                }
            }
            other => {
                return Err(self.choice_error(r.kind.referenced, "type", other, &PATH_TYPES));
            }
        };
        Ok(PathEntry {
            path,
            kind,
            uid: r.uid,
            gid: r.gid,
            mode,
        })
    }
}

pub(super) fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    if digits.len() < 3 || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}
