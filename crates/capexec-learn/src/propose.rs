//! The smallest change to a declaration that allows what its service was
//! refused: from the fixes of its denial trail (`capexec denials UNIT
//! --propose`), a drop-in that adds each refused item to its list. Drop-ins
//! replace whole arrays (capexec_decl::source), so each list in it holds
//! the unit's own entries too.

use capexec_decl::fix::allowance;
use toml::{Table, Value};

/// What the fixes ask for, as a drop-in.
#[derive(Debug, Default)]
pub struct Proposal {
    /// The drop-in's TOML; empty when nothing is to change.
    pub text: String,
    /// Items added or values set.
    pub changes: usize,
    /// Fixes that change no declaration key (or take something out): left
    /// to the reader.
    pub not_proposed: Vec<String>,
}

/// The list a key holds when the unit does not set it.
fn default_list(table: &[String], key: &str) -> Vec<Value> {
    match (table.join(".").as_str(), key) {
        ("seccomp", "allow") => vec![Value::String("@system-service".into())],
        _ => Vec::new(),
    }
}

fn lookup<'a>(t: &'a Table, path: &[String], key: &str) -> Option<&'a Value> {
    let mut t = t;
    for p in path {
        t = t.get(p)?.as_table()?;
    }
    t.get(key)
}

fn table_at<'a>(t: &'a mut Table, path: &[String]) -> &'a mut Table {
    let mut t = t;
    for p in path {
        let entry = t.entry(p.clone()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        t = entry.as_table_mut().expect("made a table just above");
    }
    t
}

/// The drop-in for `unit` (the unit's files merged, as loaded) that allows
/// what `fixes` name.
pub fn dropin(unit: &Table, fixes: &[&str]) -> Proposal {
    let mut out = Table::new();
    let mut p = Proposal::default();
    for fix in fixes {
        let Some(a) = allowance(fix) else {
            if !p.not_proposed.iter().any(|f| f == fix) {
                p.not_proposed.push((*fix).to_owned());
            }
            continue;
        };
        let current = lookup(&out, &a.table, &a.key).or_else(|| lookup(unit, &a.table, &a.key)).cloned();
        let new = match a.add {
            true => {
                let mut list = match current {
                    Some(Value::Array(l)) => l,
                    _ => default_list(&a.table, &a.key),
                };
                if list.contains(&a.value) {
                    continue;
                }
                list.push(a.value);
                Value::Array(list)
            }
            false if current.as_ref() == Some(&a.value) => continue,
            false => a.value,
        };
        table_at(&mut out, &a.table).insert(a.key, new);
        p.changes += 1;
    }
    if p.changes > 0 {
        p.text = toml::to_string(&out).unwrap_or_default();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_the_units_entries_and_gain_the_refused_ones() {
        let unit: Table = "[filesystem]\nread_only = [\"/srv/www\"]\n[landlock]\nconnect_tcp = [53]\n".parse().unwrap();
        let fixes = [
            "add \"mincore\" to [seccomp] allow (capexec run: --allow-syscall mincore)",
            "add \"/etc/app.conf\" to [filesystem] read_only (capexec run: --ro /etc/app.conf)",
            "add 9 to [landlock] connect_tcp (capexec run: --connect-tcp 9)",
            "add 9 to [landlock] connect_tcp (capexec run: --connect-tcp 9)",
            "add \"udp:127.0.0.1:9\" to broker.net.connect",
            "nothing: capexec refuses this use of unshare whatever the declaration says",
        ];
        let p = dropin(&unit, &fixes);
        assert_eq!(p.changes, 4, "{p:?}");
        let got: Table = p.text.parse().unwrap_or_else(|e| panic!("{e}: {}", p.text));
        let want: Table = "[seccomp]\nallow = [\"@system-service\", \"mincore\"]\n[filesystem]\nread_only = [\"/srv/www\", \"/etc/app.conf\"]\n\
                           [landlock]\nconnect_tcp = [53, 9]\n[broker.net]\nconnect = [\"udp:127.0.0.1:9\"]\n"
            .parse()
            .unwrap();
        assert_eq!(got, want, "{}", p.text);
        assert_eq!(p.not_proposed.len(), 1);
        // Nothing to add: no drop-in.
        let p = dropin(&got, &fixes[..5]);
        assert_eq!((p.changes, p.text.as_str()), (0, ""));
    }
}
