//! Reading a systemd unit file: sections, `Key=value` assignments in order
//! (a key may repeat; an empty assignment resets a list), `#`/`;` comments,
//! backslash line continuations; and the command-line and environment
//! quoting of systemd.exec(5).

/// One assignment, with the line it starts on (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub section: String,
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Why a unit file, or a value in it, cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxError {
    #[error("line {line}: unterminated section header `{text}`")]
    Section { line: usize, text: String },
    #[error("line {line}: expected Key=value, found `{text}`")]
    NotAnAssignment { line: usize, text: String },
    #[error("unterminated quote in `{0}`")]
    Quote(String),
    #[error("a trailing backslash")]
    TrailingBackslash,
}

pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let mut line = raw.trim().to_owned();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            section = name.strip_suffix(']').ok_or_else(|| SyntaxError::Section { line: i + 1, text: line.clone() })?.to_owned();
            continue;
        }
        while line.ends_with('\\') {
            line.pop();
            line.push(' ');
            match lines.next() {
                // Comment lines inside a continuation are skipped, as systemd does.
                Some((_, next)) if next.trim_start().starts_with('#') || next.trim_start().starts_with(';') => line.push('\\'),
                Some((_, next)) => line.push_str(next.trim()),
                None => break,
            }
        }
        let (key, value) = line.split_once('=').ok_or_else(|| SyntaxError::NotAnAssignment { line: i + 1, text: line.clone() })?;
        out.push(Entry { section: section.clone(), key: key.trim().to_owned(), value: value.trim().to_owned(), line: i + 1 });
    }
    Ok(out)
}

/// Splits a command line or a list value into words: whitespace separates,
/// double and single quotes group, backslash escapes (systemd.syntax(7)).
pub fn words(s: &str) -> Result<Vec<String>, SyntaxError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => cur.push(escaped(chars.next())?),
                        Some(x) => cur.push(x),
                        None => return Err(SyntaxError::Quote(s.to_owned())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(escaped(chars.next())?);
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The assignments of an environment file (`EnvironmentFile=`), as systemd
/// reads it: `NAME=value` lines, `#`/`;` comments, a backslash at a line's
/// end joining the next line (gearman's /etc/default file spreads one
/// quoted value over three lines), the value's quotes and escapes. Returns
/// the assignments, and the lines systemd ignores because they assign no
/// valid variable name (with the reason).
pub fn env_file(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let (mut vars, mut ignored) = (Vec::new(), Vec::new());
    let mut lines = text.lines();
    while let Some(raw) = lines.next() {
        let mut line = raw.trim().to_owned();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some(next) => line.push_str(next),
                None => break,
            }
        }
        let Some((key, value)) = line.split_once('=') else {
            ignored.push(format!("`{line}`: no `=`"));
            continue;
        };
        let key = key.trim();
        let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            ignored.push(format!("`{key}`: not a variable name (letters, digits and _, not starting with a digit)"));
            continue;
        }
        match words(value) {
            Ok(w) => vars.push((key.to_owned(), w.join(" "))),
            Err(e) => ignored.push(format!("`{key}`: {e}")),
        }
    }
    (vars, ignored)
}

fn escaped(c: Option<char>) -> Result<char, SyntaxError> {
    Ok(match c.ok_or(SyntaxError::TrailingBackslash)? {
        'n' => '\n',
        't' => '\t',
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_repeats_continuations_and_quotes() {
        let e = parse("# c\n[Service]\nExecStart=/bin/x -g 'daemon off;' \\\n  --flag\nReadWritePaths=-/a\nReadWritePaths=/b\n; c\n[Install]\nWantedBy=m\n")
            .unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!((e[0].section.as_str(), e[0].key.as_str(), e[0].value.as_str()), ("Service", "ExecStart", "/bin/x -g 'daemon off;'  --flag"));
        assert_eq!(words(&e[0].value).unwrap(), ["/bin/x", "-g", "daemon off;", "--flag"]);
        assert_eq!(e[2].value, "/b");
        assert_eq!(e[3].section, "Install");
        assert_eq!(words("A=1 \"B=two words\" C=x\\ y").unwrap(), ["A=1", "B=two words", "C=x y"]);
        assert!(words("\"open").is_err());
        assert!(parse("[Service\n").is_err());
        assert!(parse("[Service]\nno equals\n").is_err());
    }

    /// gearman-job-server's /etc/default file: one quoted value over three
    /// lines. Read line by line, its second and third lines became variables
    /// named `--daemon` and `--log-file`, and `check` refused the import.
    #[test]
    fn environment_files_join_continued_lines_and_ignore_bad_names() {
        let text = "# c\nPARAMS=\"--listen=localhost \\\n --daemon \\\n --log-file=/var/log/g.log\"\n\nB=x y\n-x=1\n9A=2\nnothing\n";
        let (vars, ignored) = env_file(text);
        assert_eq!(vars, [("PARAMS".to_owned(), "--listen=localhost  --daemon  --log-file=/var/log/g.log".to_owned()), ("B".to_owned(), "x y".to_owned())]);
        assert_eq!(ignored.len(), 3, "{ignored:?}");
        assert!(ignored[0].starts_with("`-x`: not a variable name"), "{ignored:?}");
    }
}
