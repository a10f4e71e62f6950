//! Finding and reading declaration files: the search path, drop-ins, size and
//! encoding checks, per-file type checking with located errors, and merging.
//!
//! Each file (the unit and every drop-in) is first checked on its own against the
//! raw schema, so an error names the file it is in. The files are then merged as
//! TOML tables (tables merge key by key; any other value, arrays included, is
//! replaced by the later file) and the merged table becomes the `RawUnit`.

use crate::error::{line_col, DeclError, DeclErrors};
use crate::raw::RawUnit;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where bare names are looked up, first match wins.
pub const SEARCH_PATH: &[&str] = &["/etc/capexec/units", "/run/capexec/units", "/usr/lib/capexec/units"];

/// Larger files are refused before parsing: a declaration is a few KiB, and a
/// huge file is a mistake or an attack on the parser.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One file that contributed to a unit, kept for locating errors later.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    spans: SpanTree,
}

#[derive(Debug, Clone)]
pub struct LoadedSource {
    pub name: String,
    pub files: Vec<SourceFile>,
    pub raw: RawUnit,
    /// The files merged, as TOML (what `raw` was read from).
    pub table: toml::Table,
}

impl LoadedSource {
    /// Fills in file, line and column for an error that only knows its key path:
    /// the last file that sets the key (or its closest parent) is the one to edit.
    pub fn locate(&self, mut e: DeclError) -> DeclError {
        if e.file.is_some() {
            return e;
        }
        let Some(key) = e.key.clone() else {
            e.file = self.files.first().map(|f| f.path.clone());
            return e;
        };
        let segs = parse_key(&key);
        for n in (1..=segs.len()).rev() {
            for f in self.files.iter().rev() {
                if let Some(span) = f.spans.find(&segs[..n]) {
                    let (l, c) = line_col(&f.text, span.start);
                    e.file = Some(f.path.clone());
                    e.line = Some(l);
                    e.column = Some(c);
                    return e;
                }
            }
        }
        e.file = self.files.first().map(|f| f.path.clone());
        e
    }
}

/// Resolves `FILE|NAME`: anything with a `/` is a path; a bare name is looked up in
/// the search path (with `.svc` added when missing), then in the current
/// directory (`capexec check lighttpd.svc` for the file just written).
pub fn resolve(arg: &str, search: &[PathBuf]) -> Result<PathBuf, DeclError> {
    if arg.contains('/') {
        return Ok(PathBuf::from(arg));
    }
    let file = if arg.ends_with(".svc") { arg.to_owned() } else { format!("{arg}.svc") };
    for dir in search {
        let p = dir.join(&file);
        if p.exists() {
            return Ok(p);
        }
    }
    if Path::new(&file).is_file() {
        return Ok(PathBuf::from(".").join(&file));
    }
    // A file of that very name here (`capexec learn --out app.learned`):
    // loading it then says what is wrong with its name.
    if Path::new(arg).is_file() {
        return Ok(PathBuf::from(".").join(arg));
    }
    let dirs: Vec<String> = search.iter().map(|d| d.display().to_string()).collect();
    Err(DeclError::new(format!("no declaration named `{file}` in {} or the current directory", dirs.join(", ")))
        .help(format!("give its path (/path/to/{file}), or install the file into {}", dirs.first().map_or("", |s| s))))
}

pub fn default_search_path() -> Vec<PathBuf> {
    SEARCH_PATH.iter().map(PathBuf::from).collect()
}

/// The unit's name: its file name without `.svc`.
pub fn unit_name(path: &Path) -> Result<String, DeclError> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let name = file.strip_suffix(".svc").ok_or_else(|| {
        DeclError::new("a declaration file name must end in `.svc`").in_file(path).help("rename it, e.g. to nginx.svc; the name before .svc is the unit's name")
    })?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
        return Err(DeclError::new(format!("invalid unit name `{name}`")).in_file(path).help("use letters, digits and - _ . @ only"));
    }
    Ok(name.to_owned())
}

/// The drop-ins of the unit at `path` (`PATH.d/*.toml`), in the order they
/// apply; none when it has no drop-in directory.
pub fn dropins(path: &Path) -> Result<Vec<PathBuf>, DeclError> {
    let dropin_dir = PathBuf::from(format!("{}.d", path.display()));
    if !dropin_dir.is_dir() {
        return Ok(Vec::new());
    }
    let rd = std::fs::read_dir(&dropin_dir).map_err(|e| DeclError::new(format!("cannot read drop-in directory: {e}")).in_file(&dropin_dir))?;
    let files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    // systemd's drop-ins end in .conf: one written from that habit would
    // be ignored without a word, and what it says left unenforced.
    if let Some(conf) = files.iter().find(|p| p.extension().is_some_and(|x| x == "conf")) {
        return Err(DeclError::new("a drop-in file name must end in `.toml`; this one would be ignored")
            .in_file(conf)
            .help(format!("rename it to {}", conf.with_extension("toml").display())));
    }
    let mut dropins: Vec<PathBuf> = files.into_iter().filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
    dropins.sort();
    Ok(dropins)
}

pub fn load(path: &Path) -> Result<LoadedSource, DeclErrors> {
    let name = unit_name(path)?;
    let mut paths = vec![path.to_path_buf()];
    paths.extend(dropins(path)?);
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut merged = toml::Table::new();
    for p in &paths {
        match read_one(p) {
            Ok((file, table)) => {
                merge(&mut merged, table);
                files.push(file);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(DeclErrors(errors));
    }
    // Each file passed the schema alone, and merging only combines tables, so the
    // merged table passes too; an error here is still reported, never a panic.
    let raw = RawUnit::deserialize(merged.clone()).map_err(|e| DeclError::new(format!("merging drop-ins: {e}")).in_file(path))?;
    Ok(LoadedSource { name, files, raw, table: merged })
}

fn read_one(path: &Path) -> Result<(SourceFile, toml::Table), DeclError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let help = if e.kind() == std::io::ErrorKind::NotFound { "check the path" } else { "check its permissions" };
        DeclError::new(format!("cannot read declaration: {e}")).in_file(path).help(help)
    })?;
    if !meta.is_file() {
        return Err(DeclError::new("not a regular file").in_file(path));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(DeclError::new(format!("file is {} bytes; declarations are limited to {MAX_FILE_BYTES} bytes", meta.len())).in_file(path));
    }
    let bytes = std::fs::read(path).map_err(|e| DeclError::new(format!("cannot read declaration: {e}")).in_file(path))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (l, c) = line_col(&String::from_utf8_lossy(e.as_bytes()), e.utf8_error().valid_up_to());
        DeclError { line: Some(l), column: Some(c), ..DeclError::new("file is not valid UTF-8").in_file(path) }
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e, None))?;
    // Type-check this file alone so errors name it, with the key path from serde.
    let de = toml::Deserializer::new(&text);
    if let Err(e) = serde_path_to_error::deserialize::<_, RawUnit>(de) {
        let key = e.path().to_string();
        return Err(toml_error(path, &text, e.inner(), Some(key)));
    }
    let spans = SpanTree::parse(&text);
    Ok((SourceFile { path: path.to_path_buf(), text, spans }, table))
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<String>) -> DeclError {
    let (line, column) = match e.span() {
        Some(s) => {
            let (l, c) = line_col(text, s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    let key = key.filter(|k| !k.is_empty() && k != ".");
    let message = e.message().trim().to_owned();
    let help = if message.starts_with("unknown field") {
        Some("see docs/declaration.md for every key; `capexec check` prints the resolved declaration".to_owned())
    } else {
        None
    };
    DeclError { file: Some(path.to_path_buf()), line, column, key, message, help }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `preopen.listen[1].address` → [Key(preopen), Key(listen), Index(1), Key(address)].
fn parse_key(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_owned()));
            }
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                if let Ok(n) = rest[1..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = &rest[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Seg::Key(rest.to_owned()));
        }
    }
    out
}

/// Byte spans of the values in one file, used to point validation errors (which
/// know only a key path) at a line and column.
#[derive(Debug, Clone, Default)]
struct SpanTree {
    doc: Option<toml_edit::ImDocument<String>>,
}

impl SpanTree {
    fn parse(text: &str) -> SpanTree {
        SpanTree { doc: toml_edit::ImDocument::parse(text.to_owned()).ok() }
    }

    fn find(&self, segs: &[Seg]) -> Option<Range<usize>> {
        descend(Node::Item(self.doc.as_ref()?.as_item()), segs, None)
    }
}

/// A position in a toml_edit document: array-of-tables entries are `Table`s and
/// array elements are `Value`s, not `Item`s.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

fn descend(node: Node, segs: &[Seg], span: Option<Range<usize>>) -> Option<Range<usize>> {
    let Some((first, rest)) = segs.split_first() else {
        return span;
    };
    let next = match first {
        Seg::Key(k) => {
            let table: &dyn toml_edit::TableLike = match node {
                Node::Item(i) => i.as_table_like()?,
                Node::Table(t) => t,
                Node::Value(v) => v.as_inline_table()?,
            };
            let (key, item) = table.get_key_value(k)?;
            // Implicit tables ([a.b] without [a]) have no span of their own;
            // the key's span is the next best place.
            let span = item.span().or_else(|| key.span()).or(span);
            return descend(Node::Item(item), rest, span);
        }
        Seg::Index(i) => match node {
            Node::Item(item) if item.is_array_of_tables() => {
                let t = item.as_array_of_tables()?.get(*i)?;
                return descend(Node::Table(t), rest, t.span().or(span));
            }
            Node::Item(item) => item.as_array()?.get(*i)?,
            Node::Value(v) => v.as_array()?.get(*i)?,
            Node::Table(_) => return span,
        },
    };
    descend(Node::Value(next), rest, next.span().or(span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parsing() {
        assert_eq!(
            parse_key("preopen.listen[1].address"),
            vec![Seg::Key("preopen".into()), Seg::Key("listen".into()), Seg::Index(1), Seg::Key("address".into())]
        );
    }

    #[test]
    fn span_tree_finds_nested_values() {
        let src = "[exec]\nargv = [\"/bin/a\", \"b\"]\n\n[[preopen.listen]]\naddress = \"x\"\n";
        let t = SpanTree::parse(src);
        let s = t.find(&parse_key("exec.argv[1]")).unwrap();
        assert_eq!(line_col(src, s.start), (2, 19));
        let s = t.find(&parse_key("preopen.listen[0].address")).unwrap();
        assert_eq!(line_col(src, s.start).0, 5);
    }
}
