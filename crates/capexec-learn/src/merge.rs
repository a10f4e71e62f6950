//! The mined declaration laid over the unit the run started from (`capexec
//! learn --unit`/`capexec learn UNIT`): what mining decides (the view's
//! read_only/read_write/executable, the network mode and broker net grants,
//! the allowlist, the program) comes from the run; everything else (user,
//! environment, tmpfs, preopened sockets, limits, supervision, the unit's
//! comments) stays as the unit has it. Edited with toml_edit so comments on
//! both sides survive.

use toml_edit::{DocumentMut, Item, Table, Value};

/// (table, key) pairs whose value mining decides.
const MINED: &[(&str, &str)] = &[
    ("exec", "argv"),
    ("filesystem", "read_only"),
    ("filesystem", "read_write"),
    ("filesystem", "executable"),
    ("filesystem", "read_write_exec"),
    ("filesystem", "visible"),
    ("namespaces", "net"),
    ("broker", "net"),
    ("seccomp", "allow"),
    ("seccomp", "deny"),
];

/// `unit_dir` replaces `${UNIT_DIR}` in the unit's strings: the result is
/// usually written somewhere else, where the variable would name another
/// directory.
/// A document that toml_edit cannot read.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the mined declaration does not parse (a bug in capexec learn): {0}")]
    Mined(toml_edit::TomlError),
    #[error("the unit does not parse: {0}")]
    Unit(toml_edit::TomlError),
}

pub fn onto_unit(mined: &str, unit: &str, unit_dir: &str) -> Result<String, MergeError> {
    let mined: DocumentMut = mined.parse().map_err(MergeError::Mined)?;
    let mut out: DocumentMut = unit.parse().map_err(MergeError::Unit)?;
    substitute(out.as_table_mut(), unit_dir);
    // The mined header (its comment lines) names the run; it goes first, and
    // the unit's own header comment follows it.
    let header: String = mined.to_string().lines().take_while(|l| l.starts_with('#') || l.is_empty()).map(|l| format!("{l}\n")).collect();
    for (name, item) in mined.iter() {
        let Some(mined_table) = item.as_table() else {
            out.insert(name, item.clone());
            continue;
        };
        // The mined table (with its comments), plus every key of the unit's
        // that mining does not decide.
        let mut t = mined_table.clone();
        // Comments before a table header: the unit's, then mining's (without
        // the header, which the first mined table carries).
        let mined_prefix = t.decor().prefix().and_then(|p| p.as_str()).unwrap_or_default().to_owned();
        let mined_prefix = mined_prefix.strip_prefix(header.as_str()).unwrap_or(&mined_prefix).to_owned();
        let unit_prefix = out.get(name).and_then(Item::as_table).and_then(|u| u.decor().prefix()?.as_str().map(str::to_owned)).unwrap_or_default();
        t.decor_mut().set_prefix(format!("{unit_prefix}{mined_prefix}"));
        if let Some(unit_table) = out.get(name).and_then(Item::as_table) {
            for (k, v) in unit_table.iter() {
                if !MINED.contains(&(name, k)) && !t.contains_key(k) {
                    t.insert(k, v.clone());
                }
            }
        }
        out.insert(name, Item::Table(t));
    }
    // What mining decides and left out (a table it wrote nothing in) is not
    // the unit's either: a unit's [broker.net] guard = true (import's
    // IPAddressDeny=any) stayed under a mined net = "none", which check
    // refuses.
    for (name, key) in MINED {
        if mined.get(name).is_some() {
            continue;
        }
        if let Some(t) = out.get_mut(name).and_then(Item::as_table_mut) {
            t.remove(key);
            if t.is_empty() {
                out.remove(name);
            }
        }
    }
    // Table headers are printed in the order of their positions; the two
    // documents numbered theirs independently.
    let mut n = 0;
    renumber(out.as_table_mut(), &mut n);
    out.set_trailing(mined.trailing().as_str().unwrap_or_default());
    // Each side's blank lines around the joins add up; one is enough.
    let mut text = format!("{header}{out}");
    while text.contains("\n\n\n") {
        text = text.replace("\n\n\n", "\n\n");
    }
    Ok(text)
}

fn renumber(t: &mut Table, n: &mut usize) {
    for (_, item) in t.iter_mut() {
        match item {
            Item::Table(sub) => {
                sub.set_position(*n);
                *n += 1;
                renumber(sub, n);
            }
            Item::ArrayOfTables(a) => {
                for sub in a.iter_mut() {
                    sub.set_position(*n);
                    *n += 1;
                    renumber(sub, n);
                }
            }
            _ => {}
        }
    }
}

fn substitute(t: &mut Table, dir: &str) {
    for (_, item) in t.iter_mut() {
        substitute_item(item, dir);
    }
}

fn substitute_item(item: &mut Item, dir: &str) {
    match item {
        Item::Table(t) => substitute(t, dir),
        Item::ArrayOfTables(a) => a.iter_mut().for_each(|t| substitute(t, dir)),
        Item::Value(v) => substitute_value(v, dir),
        Item::None => {}
    }
}

fn substitute_value(v: &mut Value, dir: &str) {
    match v {
        Value::String(s) if s.value().contains("${UNIT_DIR}") => {
            let decor = s.decor().clone();
            let mut new = Value::from(s.value().replace("${UNIT_DIR}", dir));
            *new.decor_mut() = decor;
            *v = new;
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute_value(x, dir)),
        Value::InlineTable(t) => t.iter_mut().for_each(|(_, x)| substitute_value(x, dir)),
        _ => {}
    }
}

/// `text` with the `index`-th command of the list `list` (`exec.start_post`)
/// made `privileged = true`, with a comment above the key naming what it
/// `wrote` (escaped: a file name with a newline would otherwise end the
/// comment and add lines of its own to the declaration).
pub fn privileged(text: &str, list: &str, index: usize, wrote: &[String]) -> Result<String, MergeError> {
    let shown = wrote.iter().take(3).map(|p| crate::mine::commented(p)).collect::<Vec<_>>().join(", ");
    let more = match wrote.len().saturating_sub(3) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let why = format!(
        "It wrote where the program does not ({shown}{more}): it runs on the host as root, as systemd\n\
         # runs the unit's commands, and the service's view gains none of that."
    );
    let mut doc: DocumentMut = text.parse().map_err(MergeError::Mined)?;
    let key = list.strip_prefix("exec.").unwrap_or(list);
    if let Some(t) = doc.get_mut("exec").and_then(|e| e.get_mut(key)).and_then(Item::as_array_of_tables_mut).and_then(|a| a.get_mut(index)) {
        t.insert("privileged", toml_edit::value(true));
        if let Some(mut k) = t.key_mut("privileged") {
            k.leaf_decor_mut().set_prefix(format!("# {why}\n"));
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mined_keys_replace_the_units_and_the_rest_stays() {
        let unit = "# the unit's own comment\ndescription = \"web\"\n\n[exec]\nargv = [\"${UNIT_DIR}/bin/web\"]\nuser = \"www-data\"\n\n\
                    [filesystem]\nread_only = [\"/old\"]\ntmpfs = [\"/run/web\"]\n\n[[preopen.listen]]\naddress = \"tcp:127.0.0.1:80\"\n";
        let mined = "# Mined by capexec learn\n\n[exec]\nargv = [\"/u/bin/web\"]\n\n[filesystem]\nread_only = [\n    \"/srv\", # read: /srv/x\n]\n\n\
                     [seccomp]\nallow = [\n    \"epoll_wait\", # 3 calls\n]\n";
        let out = onto_unit(mined, unit, "/u").unwrap();
        let v: toml::Value = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert_eq!(v["exec"]["argv"][0].as_str(), Some("/u/bin/web"));
        assert_eq!(v["exec"]["user"].as_str(), Some("www-data"));
        assert_eq!(v["filesystem"]["read_only"][0].as_str(), Some("/srv"));
        assert_eq!(v["filesystem"]["tmpfs"][0].as_str(), Some("/run/web"));
        assert_eq!(v["preopen"]["listen"][0]["address"].as_str(), Some("tcp:127.0.0.1:80"));
        assert_eq!(v["seccomp"]["allow"][0].as_str(), Some("epoll_wait"));
        assert!(out.starts_with("# Mined by capexec learn"), "{out}");
        assert!(out.contains("# read: /srv/x") && out.contains("# the unit's own comment"), "{out}");
        assert_eq!(out.matches("# Mined by").count(), 1, "{out}");
    }

    /// A table mining wrote nothing in takes the unit's mined keys away too,
    /// and goes where nothing of the unit's is left in it.
    #[test]
    fn what_mining_decides_and_left_out_is_not_the_units() {
        let unit = "[exec]\nargv = [\"/bin/x\"]\n\n[filesystem]\nread_write = [\"/proc/x\"]\ntmpfs = [\"/run/x\"]\n\n\
                    [namespaces]\nnet = \"host\"\n\n[broker.net]\nguard = true\n";
        let mined = "[exec]\nargv = [\"/bin/x\"]\n\n[namespaces]\nnet = \"none\"\n\n[seccomp]\nallow = [\"read\"]\n";
        let out = onto_unit(mined, unit, "/u").unwrap();
        let v: toml::Value = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        assert!(v.get("broker").is_none(), "{out}");
        assert!(v["filesystem"].get("read_write").is_none() && v["filesystem"]["tmpfs"][0].as_str() == Some("/run/x"), "{out}");
        assert_eq!(v["namespaces"]["net"].as_str(), Some("none"));
    }

    #[test]
    fn a_command_is_made_privileged_with_why() {
        let text =
            "[exec]\nargv = [\"/bin/d\"]\n\n[[exec.start_post]]\nargv = [\"/bin/a\"]\n\n[[exec.start_post]]\nargv = [\"/bin/b\"]\nignore_failure = true\n";
        let out = privileged(text, "exec.start_post", 1, &["/etc/x".into(), "/etc/x\nprivileged = false".into()]).unwrap();
        let v: toml::Value = toml::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
        let post = v["exec"]["start_post"].as_array().unwrap();
        assert_eq!((post[0].get("privileged"), post[1]["privileged"].as_bool(), post[1]["ignore_failure"].as_bool()), (None, Some(true), Some(true)), "{out}");
        assert!(out.contains("(/etc/x, /etc/x\\nprivileged = false): it runs on the host"), "a name's newline stays in the comment:\n{out}");
        assert!(out.contains("view gains none of that.\nprivileged = true\n"), "{out}");
        // No such command: the text as it was.
        assert_eq!(privileged(text, "exec.reload", 0, &[]).unwrap(), text);
    }
}
