//! `capexec diff` and `capexec discard`: an overlaid run's layers after it
//! ended (capexec_overlay).

use capexec::cli::{DiffArgs, DiscardArgs};
use capexec_decl::terminal::safe;
use capexec_overlay::{ChangeKind, FileKind};

const EXIT_FAIL: i32 = 1;

pub fn diff(a: &DiffArgs) -> i32 {
    let changes = match capexec_overlay::changes(&a.dir, &a.paths) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capexec diff: {e}");
            return EXIT_FAIL;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&changes).expect("changes encode as JSON"));
        return 0;
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    if !a.stat {
        for c in &changes {
            let mark = match c.change {
                ChangeKind::Added => 'A',
                ChangeKind::Modified => 'M',
                ChangeKind::Deleted => 'D',
                ChangeKind::Replaced => 'R',
            };
            let slash = if c.kind == FileKind::Directory { "/" } else { "" };
            println!("{mark} {}{slash}", safe(&c.path.to_string_lossy()));
            if a.patch {
                patch(c);
            }
        }
    }
    println!(
        "{} new, {} modified, {} deleted{}",
        count(ChangeKind::Added),
        count(ChangeKind::Modified),
        count(ChangeKind::Deleted),
        match count(ChangeKind::Replaced) {
            0 => String::new(),
            n => format!(", {n} directories emptied"),
        }
    );
    0
}

/// A unified diff of a text file's change (nothing for binary files,
/// directories and links).
fn patch(c: &capexec_overlay::Change) {
    let text = |p: &std::path::Path| std::fs::read(p).ok().filter(|b| !b.contains(&0)).and_then(|b| String::from_utf8(b).ok());
    let is_file = c.kind == FileKind::File;
    let before = match c.change {
        ChangeKind::Added => Some(String::new()),
        _ if is_file => text(&c.path),
        _ => None,
    };
    let after = match (&c.change, &c.upper) {
        (ChangeKind::Deleted, _) => Some(String::new()),
        (_, Some(u)) if is_file => text(u),
        _ => None,
    };
    let (Some(before), Some(after)) = (before, after) else { return };
    let name = c.path.to_string_lossy();
    let d = similar::TextDiff::from_lines(&before, &after);
    let unified = d.unified_diff().header(&format!("host{name}"), &format!("layer{name}")).to_string();
    print!("{}", capexec_decl::terminal::safe_lines(&unified));
}

pub fn discard(a: &DiscardArgs) -> i32 {
    match capexec_overlay::discard(&a.dir) {
        Ok(()) => {
            eprintln!("capexec discard: dropped what the runs in {} wrote", safe(&a.dir.to_string_lossy()));
            0
        }
        Err(e) => {
            eprintln!("capexec discard: {e}");
            EXIT_FAIL
        }
    }
}
