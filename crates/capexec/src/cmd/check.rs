//! `capexec check`: validate declarations, print them resolved.

use capexec::cli::CheckArgs;
use capexec_decl::{Context, DeclError};

pub fn run(args: &CheckArgs) -> i32 {
    let search = super::search_path(&args.search.unit_path);
    let ctx = Context::current();
    let mut specs = Vec::new();
    let mut errors: Vec<DeclError> = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for u in &args.units {
        match capexec_decl::load_unit(u, &search, &ctx) {
            Ok(spec) => {
                if let Some(prev) = seen.insert(spec.name.clone(), spec.sources.first().cloned()) {
                    errors.push(
                        DeclError::new(format!("unit name `{}` given twice (also {})", spec.name, prev.map(|p| p.display().to_string()).unwrap_or_default()))
                            .help("unit names must be unique; rename one of the files"),
                    );
                    continue;
                }
                specs.push(spec);
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if args.json {
        let out = serde_json::json!({ "units": specs, "errors": errors });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for s in &specs {
            if args.quiet {
                continue;
            }
            let from: Vec<String> = s.sources.iter().map(|p| p.display().to_string()).collect();
            println!("# {}: OK ({})", s.name, from.join(", "));
            for w in &s.warnings {
                println!("# warning: {w}");
            }
            match toml::to_string(s) {
                Ok(t) => println!("{t}"),
                Err(e) => println!("# (cannot render as TOML: {e})\n{s:#?}"),
            }
        }
        for e in &errors {
            eprintln!("error: {e}");
        }
    }
    if errors.is_empty() {
        0
    } else {
        1
    }
}
