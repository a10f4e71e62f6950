//! The manual pages in docs/man/ and the shell completions in
//! packaging/completions/ are generated from the clap definition; these tests
//! fail when they are out of date. Regenerate with:
//!   CAPEXEC_UPDATE_MAN=1 cargo test -p capexec --test man

use clap::CommandFactory;
use std::path::Path;

fn render(cmd: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out).unwrap();
    out
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man");
    let mut cmd = capexec::cli::Cli::command();
    cmd.build();
    let mut pages = vec![("capexec.1".to_owned(), render(cmd.clone()))];
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("capexec-{}", sub.get_name());
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        let page = sub.clone().name(static_name);
        pages.push((format!("{name}.1"), render(page)));
    }
    let update = std::env::var_os("CAPEXEC_UPDATE_MAN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (file, text) in pages {
        let path = dir.join(&file);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let current = std::fs::read(&path).unwrap_or_default();
        assert!(current == text, "docs/man/{file} is out of date: run `CAPEXEC_UPDATE_MAN=1 cargo test -p capexec --test man`");
    }
}

#[test]
fn shell_completions_are_up_to_date() {
    use clap_complete::Shell;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/completions");
    let update = std::env::var_os("CAPEXEC_UPDATE_MAN").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (shell, file) in [(Shell::Bash, "capexec.bash"), (Shell::Zsh, "_capexec"), (Shell::Fish, "capexec.fish")] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut capexec::cli::Cli::command(), "capexec", &mut text);
        let path = dir.join(file);
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let current = std::fs::read(&path).unwrap_or_default();
        assert!(current == text, "packaging/completions/{file} is out of date: run `CAPEXEC_UPDATE_MAN=1 cargo test -p capexec --test man`");
    }
}
