//! An image's `test:`: a command line. With a shell in the image it runs as `/bin/sh -c`;
//! without one gib splits it into words with the shell's quoting rules and runs the first.
//! Shell syntax (`&&`, `|`, redirections, `$(…)`, variables, `*`) then reaches the program
//! as plain arguments and the test would pass or fail for the wrong reason, so it is found
//! here, when the file is loaded, and refused once the image proves to have no shell.

use super::*;

impl Validator<'_> {
    pub(super) fn image_test(&self, raw: &S<String>) -> Checked<ImageTest> {
        let command = raw.value.trim();
        if command.is_empty() {
            return Err(self.source.error(raw.referenced, "`test` is empty"));
        }
        Ok(ImageTest {
            command: raw.value.clone(),
            shell_syntax: shell_syntax(command),
            at: self.source.position(raw.referenced),
        })
    }
}

/// The first piece of shell syntax outside quotes (variables and command substitution
/// inside double quotes too), named as the user would search for it; `None` for a plain
/// command and its words.
pub fn shell_syntax(command: &str) -> Option<&'static str> {
    let chars: Vec<char> = command.chars().collect();
    let mut i = 0;
    let mut in_double = false;
    // The first word's leading name characters, while it could still be `NAME=`.
    let mut first_word: Option<String> = Some(String::new());
    let mut word_start = true;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let at_word_start = word_start;
        word_start = false;
        if in_double {
            match c {
                '"' => in_double = false,
                '\\' => i += 1,
                '`' => return Some("a command substitution (`…`)"),
                '$' if next == Some('(') => return Some("a command substitution ($(…))"),
                '$' if next.is_some_and(is_parameter_start) => {
                    return Some("a variable ($…)");
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        if let Some(name) = &mut first_word {
            if c == '=' && !name.is_empty() {
                return Some("a variable assignment (`NAME=value command`)");
            }
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
            } else {
                first_word = None;
            }
        }
        match c {
            '\\' => i += 1,
            '\'' => match chars[i + 1..].iter().position(|&q| q == '\'') {
                Some(len) => i += len + 1,
                None => return None,
            },
            '"' => in_double = true,
            ' ' | '\t' => word_start = true,
            '\n' | ';' => return Some("a command separator (`;` or a new line)"),
            '&' if next == Some('&') => return Some("`&&`"),
            '|' if next == Some('|') => return Some("`||`"),
            '|' => return Some("a pipe (`|`)"),
            '&' => return Some("a background command (`&`)"),
            '<' | '>' => return Some("a redirection (`<` or `>`)"),
            '(' | ')' => return Some("a subshell (`(…)`)"),
            '`' => return Some("a command substitution (`…`)"),
            '$' if next == Some('(') => return Some("a command substitution ($(…))"),
            '$' if next.is_some_and(is_parameter_start) => return Some("a variable ($…)"),
            // `?` and `[` are left alone: common in URLs and patterns, and a glob that
            // matches nothing stays as it is in the shell too.
            '*' => return Some("a glob (`*`)"),
            '~' if at_word_start => return Some("a home directory (`~`)"),
            // A comment runs to the end of the line; a next line is a second command.
            '#' if at_word_start => {
                return chars[i..]
                    .contains(&'\n')
                    .then_some("a command separator (`;` or a new line)");
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_parameter_start(c: char) -> bool {
    c.is_ascii_alphabetic() || "_{@*#?$!-0123456789".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_have_no_shell_syntax() {
        for command in [
            "/usr/bin/greet",
            "/usr/bin/greet --fail",
            r#"/usr/bin/python3 -c 'print("a && b; $HOME | *")' "x y" z\ w"#,
            "/usr/bin/env --ignore-environment=x a=b",
            r"/bin/echo a\&\&b \$HOME \*",
            "python3 -c 'import ssl'",
            "/usr/bin/x --opt=1 a#b",
            // A comment: the shell and gib's own splitting both drop it.
            "/usr/bin/greet # what it does && why",
            "/usr/bin/fetch --url=http://127.0.0.1/x?y=1 --match=[a-z]",
        ] {
            assert_eq!(shell_syntax(command), None, "{command}");
        }
    }

    #[test]
    fn operators_outside_quotes_are_shell_syntax() {
        for (command, found) in [
            ("/usr/bin/greet --fail && false", "`&&`"),
            ("/usr/bin/greet || true", "`||`"),
            (
                "/usr/bin/greet; false",
                "a command separator (`;` or a new line)",
            ),
            (
                "/usr/bin/greet\nfalse",
                "a command separator (`;` or a new line)",
            ),
            ("/usr/bin/greet | grep x", "a pipe (`|`)"),
            ("/usr/bin/greet > /dev/null", "a redirection (`<` or `>`)"),
            ("/usr/bin/greet 2>&1", "a redirection (`<` or `>`)"),
            ("/usr/bin/greet &", "a background command (`&`)"),
            ("/usr/bin/greet $(id -u)", "a command substitution ($(…))"),
            (
                "/usr/bin/greet \"$(id -u)\"",
                "a command substitution ($(…))",
            ),
            ("/usr/bin/greet `id -u`", "a command substitution (`…`)"),
            ("/usr/bin/greet \"$HOME\"", "a variable ($…)"),
            ("/usr/bin/greet ${X}", "a variable ($…)"),
            ("/bin/ls /usr/lib/*.so", "a glob (`*`)"),
            ("/bin/ls ~/x", "a home directory (`~`)"),
            ("(/usr/bin/greet)", "a subshell (`(…)`)"),
            (
                "LANG=C /usr/bin/greet",
                "a variable assignment (`NAME=value command`)",
            ),
        ] {
            assert_eq!(shell_syntax(command), Some(found), "{command}");
        }
    }
}
