//! `capexec analyze`: the exposure score of declarations (see capexec_analyze::exposure).

use capexec::cli::AnalyzeArgs;
use capexec_analyze::exposure::{self, Finding};
use capexec_decl::Context;

pub fn run(args: &AnalyzeArgs) -> i32 {
    if let Some(t) = args.threshold.filter(|t| !(0.0..=10.0).contains(t)) {
        eprintln!("capexec analyze: --threshold {t}: give a score from 0.0 to 10.0");
        return 2;
    }
    let search = super::search_path(&args.search.unit_path);
    let ctx = Context::current();
    let (mut units, mut errors) = (Vec::new(), Vec::new());
    for u in &args.units {
        match capexec_decl::load_unit(u, &search, &ctx) {
            Ok(spec) => {
                let findings = exposure::assess(&spec);
                units.push((spec.name.clone(), spec.sources.first().cloned(), findings));
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // systemd compares the rounded-up tenths; so does the threshold.
    let limit = args.threshold.map(|t| (t * 10.0).round() as u64);
    let mut over = Vec::new();
    for (name, _, f) in &units {
        let e = exposure::exposure(f);
        if limit.is_some_and(|l| e > l) {
            over.push(format!("{name} ({})", tenths(e)));
        }
    }
    if args.json {
        let list: Vec<serde_json::Value> = units
            .iter()
            .map(|(name, source, f)| {
                let e = exposure::exposure(f);
                let ws = exposure::weight_sum(f);
                let checks: Vec<serde_json::Value> = f
                    .iter()
                    .map(|x| {
                        let mut v = serde_json::to_value(x).unwrap_or_default();
                        v["exposure"] = x.exposure(ws).map(|t| serde_json::json!(t as f64 / 10.0)).unwrap_or(serde_json::Value::Null);
                        v
                    })
                    .collect();
                serde_json::json!({"name": name, "source": source, "exposure": e as f64 / 10.0, "level": exposure::level(e), "checks": checks})
            })
            .collect();
        println!("{}", serde_json::json!({"units": list, "errors": errors, "threshold": args.threshold, "above_threshold": over}));
    } else {
        for (name, _, f) in &units {
            let e = exposure::exposure(f);
            if args.short {
                println!("{name:<24} {:>4} {}", tenths(e), exposure::level(e));
            } else {
                print_table(name, f);
            }
        }
        for e in &errors {
            eprintln!("{e}");
        }
        if !over.is_empty() {
            eprintln!("capexec analyze: above the threshold {}: {}", args.threshold.unwrap_or_default(), over.join(", "));
        }
    }
    if !errors.is_empty() || !over.is_empty() {
        1
    } else {
        0
    }
}

fn tenths(e: u64) -> String {
    format!("{}.{}", e / 10, e % 10)
}

/// systemd's layout: the checks that cost most first, then the overall line.
fn print_table(name: &str, findings: &[Finding]) {
    let ws = exposure::weight_sum(findings);
    let mut rows: Vec<&Finding> = findings.iter().collect();
    rows.sort_by_key(|f| (std::cmp::Reverse(f.exposure(ws).unwrap_or(0)), std::cmp::Reverse(f.weight), f.name));
    let width = rows.iter().map(|f| f.name.chars().count()).max().unwrap_or(0);
    println!("  {:<width$}  {:>8}  DESCRIPTION", "NAME", "EXPOSURE");
    for f in rows {
        let mark = match f.badness {
            None => ' ',
            Some(0) => '✓',
            Some(_) => '✗',
        };
        let exp = f.exposure(ws).map(tenths).unwrap_or_default();
        let credit = f.credit.map(|c| format!(" [capexec: {c}]")).unwrap_or_default();
        println!("{mark} {:<width$}  {exp:>8}  {}{credit}", f.name, f.description);
    }
    let e = exposure::exposure(findings);
    println!("\n→ Overall exposure level for {name}: {} {}\n", tenths(e), exposure::level(e));
}
