//! `capexec diff` and `capexec discard`: an overlaid run's layers after it
//! ended (capexec_overlay).

use capexec::cli::{CommitArgs, DiffArgs, DiscardArgs};
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
            println!("{}", line(c));
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

/// `A /path`, `D /dir/`: a change as diff and commit list it.
fn line(c: &capexec_overlay::Change) -> String {
    let mark = match c.change {
        ChangeKind::Added => 'A',
        ChangeKind::Modified => 'M',
        ChangeKind::Deleted => 'D',
        ChangeKind::Replaced => 'R',
    };
    let slash = if c.kind == FileKind::Directory { "/" } else { "" };
    format!("{mark} {}{slash}", safe(&c.path.to_string_lossy()))
}

pub fn commit(a: &CommitArgs) -> i32 {
    let opts = capexec_overlay::commit::CommitOptions { only: a.paths.clone(), force: a.force, dry_run: a.dry_run };
    let r = match capexec_overlay::commit::commit(&a.dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("capexec commit: {e}");
            return EXIT_FAIL;
        }
    };
    let refused = !r.conflicts.is_empty() && !a.force;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("the report encodes"));
    } else {
        for c in &r.applied {
            println!("{}", line(c));
        }
        for (p, why) in &r.conflicts {
            eprintln!("capexec commit: {}: {why}", safe(&p.to_string_lossy()));
        }
        for (p, why) in &r.skipped {
            eprintln!("capexec commit: {}: not applied: {}", safe(&p.to_string_lossy()), safe(why));
        }
        match (refused, a.dry_run) {
            (true, _) => eprintln!(
                "capexec commit: nothing applied: {} path(s) changed on the host since the run (see `capexec diff`; --force applies over them)",
                r.conflicts.len()
            ),
            (false, true) => eprintln!("capexec commit: dry run: {} change(s) would be applied", r.applied.len()),
            (false, false) => eprintln!("capexec commit: applied {} change(s)", r.applied.len()),
        }
    }
    if refused || !r.skipped.is_empty() {
        EXIT_FAIL
    } else {
        0
    }
}

/// After an overlaid run, when standard input is a terminal: Mbox's menu.
/// Nothing is applied unless asked for; what is not committed stays in the
/// layers for `capexec diff`, `commit` and `discard` later.
pub fn review(dir: &std::path::Path) {
    use std::io::{BufRead, Write};
    let shown = safe(&dir.to_string_lossy()).into_owned();
    let mut stdin = std::io::stdin().lock();
    loop {
        let changes = match capexec_overlay::changes(dir, &[]) {
            Ok(c) => c,
            Err(e) => return eprintln!("capexec run: {e}"),
        };
        if changes.is_empty() {
            return;
        }
        eprint!(
            "capexec run: {} change(s) kept in {shown}: [c]ommit all, commit [o]ne PATH, [d]iff, [l]ist, [i]gnore (keep them there), [q]uit? ",
            changes.len()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        if stdin.read_line(&mut answer).unwrap_or(0) == 0 {
            eprintln!();
            return;
        }
        let answer = answer.trim();
        let (cmd, arg) = answer.split_once(' ').map_or((answer, ""), |(c, a)| (c, a.trim()));
        let apply = |only: Vec<std::path::PathBuf>| {
            commit(&CommitArgs { dir: dir.to_owned(), paths: only, dry_run: false, force: false, json: false });
        };
        match cmd {
            "c" | "commit" => {
                apply(Vec::new());
                return;
            }
            "o" | "one" if !arg.is_empty() => apply(vec![std::path::PathBuf::from(arg)]),
            "o" | "one" => eprintln!("capexec run: give the path: o /the/path"),
            "d" | "diff" => {
                diff(&DiffArgs { dir: dir.to_owned(), paths: Vec::new(), stat: false, patch: true, json: false });
            }
            "l" | "list" => {
                diff(&DiffArgs { dir: dir.to_owned(), paths: Vec::new(), stat: false, patch: false, json: false });
            }
            "i" | "ignore" | "q" | "quit" => {
                eprintln!("capexec run: the changes stay in {shown} (capexec diff, commit, discard)");
                return;
            }
            _ => eprintln!("capexec run: one of c, o PATH, d, l, i, q"),
        }
    }
}
