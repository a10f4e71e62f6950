//! `capexec import`: a systemd unit file in, a declaration out (see capexec_analyze::import).

use capexec::cli::ImportArgs;

pub fn run(args: &ImportArgs) -> i32 {
    use capexec_analyze::import::{locate, UnitText};
    let located = match locate::locate(&args.unit, args.instance.as_deref(), locate::SYSTEM_UNIT_DIRS) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("capexec import: {e}");
            return 1;
        }
    };
    let read = |path: &std::path::Path| match std::fs::read_to_string(path) {
        Ok(text) => Ok(UnitText { path: path.display().to_string(), text }),
        Err(e) => {
            eprintln!("capexec import: read {}: {e}", path.display());
            Err(())
        }
    };
    let Ok(unit) = read(&located.path) else { return 1 };
    let Ok(dropins) = located.dropins.iter().map(|p| read(p)).collect::<Result<Vec<_>, _>>() else { return 1 };
    let decl = match capexec_analyze::import::convert(&unit, &dropins, located.instance.as_deref()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("capexec import: {e}");
            return 1;
        }
    };
    match &args.out {
        None => print!("{decl}"),
        Some(out) => {
            let written =
                std::fs::OpenOptions::new().write(true).create_new(true).open(out).and_then(|mut f| std::io::Write::write_all(&mut f, decl.as_bytes()));
            if let Err(e) = written {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists { " (remove it first: import does not overwrite)" } else { "" };
                eprintln!("capexec import: write {}: {e}{hint}", out.display());
                return 1;
            }
            let notes = decl.lines().filter(|l| l.starts_with("#   ")).count();
            eprintln!("capexec import: wrote {} ({notes} notes at the end); next: capexec check {}", out.display(), out.display());
        }
    }
    0
}
