//! Errors that point at the place to fix: file, line, column, key path, and what is allowed.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeclError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path, e.g. `exec.argv[0]` or `preopen.listen[1].address`.
    pub key: Option<String>,
    pub message: String,
    /// What to do about it, when there is something better to say than the message.
    pub help: Option<String>,
}

impl DeclError {
    pub fn new(message: impl Into<String>) -> Self {
        DeclError { file: None, line: None, column: None, key: None, message: message.into(), help: None }
    }
    pub fn at_key(key: impl Into<String>, message: impl Into<String>) -> Self {
        DeclError { key: Some(key.into()), ..DeclError::new(message) }
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }
}

/// Terminal-safe: messages quote what the file says, and a declaration from
/// a package or a download can hold escape sequences.
impl fmt::Display for DeclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::terminal::{safe, safe_lines};
        match (&self.file, self.line, self.column) {
            (Some(p), Some(l), Some(c)) => write!(f, "{}:{l}:{c}: ", safe(&p.display().to_string()))?,
            (Some(p), _, _) => write!(f, "{}: ", safe(&p.display().to_string()))?,
            _ => {}
        }
        if let Some(k) = &self.key {
            write!(f, "`{}`: ", safe(k))?;
        }
        f.write_str(&safe_lines(&self.message))?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {}", safe_lines(h))?;
        }
        Ok(())
    }
}

/// All the problems found in one declaration (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeclErrors(pub Vec<DeclError>);

impl fmt::Display for DeclErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DeclErrors {}

impl From<DeclError> for DeclErrors {
    fn from(e: DeclError) -> Self {
        DeclErrors(vec![e])
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}
impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
