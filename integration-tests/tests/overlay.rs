//! `capexec run --overlay DIR` (issue 21, after Mbox): the program sees the
//! host's files, every write lands in layers in DIR and never on the host;
//! `capexec diff` lists exactly what it changed, a second run sees the
//! first's changes, `capexec discard` drops them. Rootless and as root.

use capexec_integration_tests::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

/// Every path below `root` with its type, mode, owner and contents.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = p.symlink_metadata().unwrap();
        let data = if m.is_file() {
            std::fs::read(&p).unwrap()
        } else if m.file_type().is_symlink() {
            std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else {
            Vec::new()
        };
        out.insert(p.clone(), (m.mode(), m.uid(), data));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

fn chown_tree(root: &Path, (uid, gid): (u32, u32)) {
    for p in snapshot(root).keys() {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
    }
}

both!(writes_land_in_the_layers_and_diff_lists_them, |who: As| {
    let base = PathBuf::from(format!("/var/tmp/capexec-it-overlay-{}-{who:?}", std::process::id()));
    let _cleanup = Scratch(vec![base.clone()]);
    let (tree, dir) = (base.join("tree"), base.join("box"));
    for d in ["keep", "gone", "emptied"] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::write(tree.join("modified"), "before\n").unwrap();
    std::fs::write(tree.join("same"), "same\n").unwrap();
    std::fs::write(tree.join("deleted"), "x\n").unwrap();
    std::fs::write(tree.join("gone/inside"), "x\n").unwrap();
    std::fs::write(tree.join("emptied/old"), "x\n").unwrap();
    std::os::unix::fs::symlink("modified", tree.join("link")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    if who == As::User {
        chown_tree(&base, test_user());
    }
    let before = snapshot(&tree);
    let script = "echo after > modified && cat same > /dev/null && echo new > added && mkdir -p made/deep && echo d > made/deep/f && \
        rm deleted && rm -r gone && rm -r emptied && mkdir emptied && echo n > emptied/new && ln -sf same link && cat modified";
    let run = |script: &str| {
        let mut c = command(who);
        c.arg("run").arg("--overlay").arg(&dir).args(["--", "/bin/sh", "-c", script]).current_dir(&tree);
        output(c, T)
    };
    let o = run(script);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout) == "after\n", "{who:?}: {}", text(&o));
    assert_eq!(snapshot(&tree), before, "{who:?}: the host tree changed");

    let mut c = command(who);
    c.args(["diff", "--json"]).arg(&dir).arg(&tree);
    let o = output(c, T);
    assert!(o.status.success(), "{}", text(&o));
    let got: Vec<(String, String)> = serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
        .iter()
        .map(|c| (c["path"].as_str().unwrap().strip_prefix(tree.to_str().unwrap()).unwrap().to_owned(), c["change"].as_str().unwrap().to_owned()))
        .collect();
    let want: Vec<(String, String)> = [
        ("/added", "added"),
        ("/deleted", "deleted"),
        ("/emptied", "replaced"),
        ("/emptied/new", "added"),
        ("/emptied/old", "deleted"),
        ("/gone", "deleted"),
        ("/link", "modified"),
        ("/made", "added"),
        ("/made/deep", "added"),
        ("/made/deep/f", "added"),
        ("/modified", "modified"),
    ]
    .iter()
    .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(got, want, "{who:?}");
    let mut c = command(who);
    c.args(["diff", "--patch"]).arg(&dir).arg(tree.join("modified"));
    let o = output(c, T);
    assert!(text(&o).contains("-before\n+after\n"), "{}", text(&o));

    // A second run sees the first's changes.
    let o = run("cat modified added made/deep/f && test ! -e deleted");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "after\nnew\nd\n", "{who:?}: {}", text(&o));
    // Dropped: the next run sees the host again.
    let mut c = command(who);
    c.arg("discard").arg(&dir);
    assert!(output(c, T).status.success());
    let o = run("cat modified && test -e deleted && test ! -e added");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "before\n", "{who:?}: {}", text(&o));
    assert_eq!(snapshot(&tree), before);
});
