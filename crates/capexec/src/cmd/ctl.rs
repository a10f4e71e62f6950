//! The commands that talk to a running daemon: start, stop, restart, reload,
//! status, list, logs, enable, disable. Each sends one request over the control
//! socket and prints the answer for people, or as JSON with `--json`.

use capexec::cli::{ClientArgs, EnableArgs, LogsArgs, StatusArgs, UnitsArgs};
use capexec_decl::terminal::{safe, safe_lines};
use capexec_supervisor::control::{Client, ClientError};
use capexec_supervisor::paths;
use capexec_supervisor::protocol::{Request, Response, ServiceStatus};
use std::path::PathBuf;

/// A daemon error, or the daemon could not be reached.
const EXIT_FAIL: i32 = 1;
/// No daemon to talk to (as systemctl's "unit not active" is 3; 4 = no such thing).
const EXIT_NO_DAEMON: i32 = 4;

fn socket(c: &ClientArgs) -> PathBuf {
    if let Some(s) = &c.socket {
        return s.clone();
    }
    if let Some(s) = std::env::var_os("CAPEXEC_SOCKET").filter(|s| !s.is_empty()) {
        return s.into();
    }
    paths::default_socket(c.user)
}

/// Paths are sent absolute: the daemon does not share our working directory.
fn unit_args(units: &[String]) -> Vec<String> {
    units
        .iter()
        .map(|u| if u.contains('/') { std::path::absolute(u).map(|p| p.display().to_string()).unwrap_or_else(|_| u.clone()) } else { u.clone() })
        .collect()
}

fn call(c: &ClientArgs, req: &Request) -> Result<Response, i32> {
    Client::call(&socket(c), req).map_err(report_client)
}

fn report_client(e: ClientError) -> i32 {
    eprintln!("capexec: {e}");
    if e.message.starts_with("no capexec daemon") {
        EXIT_NO_DAEMON
    } else {
        EXIT_FAIL
    }
}

/// Prints an error reply; returns the exit code.
fn fail(r: &Response) -> i32 {
    eprintln!("capexec: {}", safe_lines(r.error.as_deref().unwrap_or("the daemon reported an error")));
    if let Some(h) = &r.hint {
        eprintln!("  help: {}", safe(h));
    }
    EXIT_FAIL
}

fn print_json(r: &Response) {
    println!("{}", serde_json::to_string_pretty(r).expect("serialisable"));
}

/// Sends the request; `Err(exit code)` when the command is already answered:
/// the daemon was not reached, `--json` printed the reply, or the reply is an
/// error (printed). `Ok` is a successful reply for the human output.
fn request(c: &ClientArgs, req: &Request) -> Result<Response, i32> {
    let r = call(c, req)?;
    if c.json {
        print_json(&r);
        return Err(if r.ok { 0 } else { EXIT_FAIL });
    }
    if !r.ok {
        return Err(fail(&r));
    }
    Ok(r)
}

pub fn start(a: &UnitsArgs) -> i32 {
    units_cmd(&a.client, Request::Start { units: unit_args(&a.units) }, "started")
}

pub fn stop(a: &UnitsArgs) -> i32 {
    units_cmd(&a.client, Request::Stop { units: unit_args(&a.units) }, "stopped")
}

pub fn restart(a: &UnitsArgs) -> i32 {
    units_cmd(&a.client, Request::Restart { units: unit_args(&a.units) }, "restarted")
}

fn units_cmd(c: &ClientArgs, req: Request, verb: &str) -> i32 {
    let r = match call(c, &req) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if c.json {
        print_json(&r);
        return if r.ok { 0 } else { EXIT_FAIL };
    }
    let statuses: Vec<ServiceStatus> = serde_json::from_value(r.result.clone()).unwrap_or_default();
    for s in &statuses {
        let pid = s.main_pid.map(|p| format!(", main pid {p}")).unwrap_or_default();
        // An exec.condition that said "not now" (systemd's ExecCondition=).
        let unmet = s.state == "exited" && s.result.as_deref() == Some("condition-unmet");
        match unmet {
            true => println!("{}: not started ({}, condition-unmet)", safe(&s.name), s.state),
            false => println!("{}: {} ({}{pid})", safe(&s.name), verb_for(verb, &s.state), s.state),
        }
        if s.state == "failed" {
            print_tail(s, 5);
        }
        if let Some(why) = s.log_tail.iter().rev().find(|l| l.contains("not started: ")).filter(|_| unmet) {
            println!("    {}", safe(why));
        }
    }
    if r.ok {
        0
    } else {
        fail(&r)
    }
}

fn verb_for<'a>(verb: &'a str, state: &str) -> &'a str {
    match state {
        "failed" => "FAILED",
        _ => verb,
    }
}

fn print_tail(s: &ServiceStatus, n: usize) {
    let skip = s.log_tail.len().saturating_sub(n);
    for l in &s.log_tail[skip..] {
        println!("    {}", safe(l));
    }
}

pub fn reload(a: &crate::cli::ReloadArgs) -> i32 {
    let c = &a.client;
    if !a.units.is_empty() {
        return match request(c, &Request::Reload { units: unit_args(&a.units) }) {
            Ok(r) => {
                for unit in r.result.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                    println!("{}: reloaded", safe(&unit));
                }
                0
            }
            Err(code) => code,
        };
    }
    let r = match request(c, &Request::Reload { units: Vec::new() }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut code = 0;
    if let Some(m) = r.result.as_object() {
        for key in ["added", "started", "restarted", "updated", "removed", "unchanged"] {
            if let Some(list) = m.get(key).and_then(|v| v.as_array()) {
                let names: Vec<&str> = list.iter().filter_map(|v| v.as_str()).collect();
                println!("{key}: {}", names.join(" "));
            }
        }
        if let Some(errs) = m.get("errors").and_then(|v| v.as_object()) {
            for (unit, e) in errs {
                eprintln!("capexec: {}: declaration not loaded:\n{}", safe(unit), safe_lines(e.as_str().unwrap_or_default()));
                code = EXIT_FAIL;
            }
        }
    }
    code
}

pub fn status(a: &StatusArgs) -> i32 {
    let r = match request(&a.client, &Request::Status { units: unit_args(&a.units) }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let statuses: Vec<ServiceStatus> = serde_json::from_value(r.result).unwrap_or_default();
    if statuses.is_empty() {
        println!("no services loaded (declarations go in the unit search path; `capexec start FILE` loads one by path)");
    }
    for (i, s) in statuses.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_status(s, a.lines);
    }
    0
}

/// `capexec denials UNIT`: the service's denial trail.
pub fn denials(a: &capexec::cli::DenialsArgs) -> i32 {
    // Asked without --json: the JSON view is this trail alone.
    let client = capexec::cli::ClientArgs { json: false, ..a.client.clone() };
    let r = match request(&client, &Request::Status { units: unit_args(std::slice::from_ref(&a.unit)) }) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let statuses: Vec<ServiceStatus> = serde_json::from_value(r.result).unwrap_or_default();
    let Some(s) = statuses.first() else {
        eprintln!("capexec: no service `{}`", safe(&a.unit));
        return EXIT_FAIL;
    };
    let d = &s.denials;
    if a.propose {
        return propose(s, a.client.json);
    }
    if a.client.json {
        println!("{}", serde_json::json!({ "unit": s.name, "total": d.total, "not_shown": d.not_shown, "recent": d.recent }));
        return 0;
    }
    if d.total == 0 {
        println!("{}: nothing refused", safe(&s.name));
        return 0;
    }
    let hidden = if d.not_shown > 0 { format!(", {} not written to its log", d.not_shown) } else { String::new() };
    println!("{}: refused {} time(s){hidden}; the latest:", safe(&s.name), d.total);
    for e in &d.recent {
        let times = if e.count > 1 { format!(" ({}x)", e.count) } else { String::new() };
        println!("  {}: {}{times}", e.mechanism, safe(&e.what));
        println!("    to allow it: {}", safe(&e.fix));
    }
    0
}

/// `capexec denials UNIT --propose`: a drop-in for the unit's declaration
/// from the fixes in its trail (capexec_learn::propose).
fn propose(s: &ServiceStatus, json: bool) -> i32 {
    let Some(unit) = s.sources.first().map(std::path::PathBuf::from) else {
        eprintln!("capexec: {}: the daemon does not say which file it was loaded from", safe(&s.name));
        return EXIT_FAIL;
    };
    let loaded = match capexec_decl::source::load(&unit) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("capexec: {}: read its declaration: {e}", safe(&s.name));
            return EXIT_FAIL;
        }
    };
    let fixes: Vec<&str> = s.denials.recent.iter().map(|e| e.fix.as_str()).collect();
    let p = capexec_learn::propose::dropin(&loaded.table, &fixes);
    let path = format!("{}.d/50-allow-refused.toml", unit.display());
    if json {
        let dropin = (p.changes > 0).then_some(&p.text);
        println!("{}", serde_json::json!({ "unit": s.name, "path": path, "changes": p.changes, "dropin": dropin, "not_proposed": p.not_proposed }));
        return 0;
    }
    if p.changes == 0 {
        println!("# {}: nothing to propose ({} refusal(s) in its trail, none that a declaration key allows)", safe(&s.name), s.denials.total);
    } else {
        println!("# A drop-in that allows what {} was refused ({} change(s), from the {} latest refusals).", safe(&s.name), p.changes, fixes.len());
        println!("# Save it as {}, then `capexec reload` and restart the service.", safe(&path));
        println!("# Drop-ins replace whole lists: each list below holds the unit's own entries too.");
        print!("{}", safe_lines(&p.text));
    }
    if !p.not_proposed.is_empty() {
        println!("# Not proposed (no declaration key allows them):");
        for f in &p.not_proposed {
            println!("#   {}", safe(f));
        }
    }
    0
}

fn print_status(s: &ServiceStatus, lines: usize) {
    let mark = match s.state.as_str() {
        "running" => "●",
        "failed" => "×",
        _ => "○",
    };
    let desc = if s.description.is_empty() { String::new() } else { format!(" — {}", safe(&s.description)) };
    println!("{mark} {}{desc}", safe(&s.name));
    let up = s.uptime_secs.map(|u| format!(" for {}", human_secs(u))).unwrap_or_default();
    let why = match (s.state.as_str(), s.result.as_deref()) {
        ("failed" | "waiting-to-restart" | "exited", Some(r)) => format!(" ({r})"),
        ("running", _) if s.reloading => " (reloading)".to_owned(),
        _ => String::new(),
    };
    println!("       state: {}{why}{up}", s.state);
    if let Some(src) = s.sources.first() {
        println!("      loaded: {src}{}", if s.enabled { " (enabled)" } else { " (disabled)" });
    }
    if let Some(p) = s.main_pid {
        println!("    main pid: {p}{}", s.init_pid.map(|i| format!(" (namespace init {i})")).unwrap_or_default());
    }
    if let Some(t) = &s.status_text {
        println!("      status: \"{}\"", safe(t));
    }
    let mut usage = Vec::new();
    if let Some(t) = s.tasks {
        usage.push(format!("{t} tasks"));
    }
    if let Some(m) = s.memory_bytes {
        usage.push(format!("memory {}", human_bytes(m)));
    }
    if !usage.is_empty() {
        println!("       usage: {}", usage.join(", "));
    }
    println!("    restarts: {}", s.restarts);
    if let Some(e) = &s.last_exit {
        let code = e.code.map(|c| format!("status {c}{}, ", signal_note(c))).unwrap_or_default();
        println!("   last exit: {code}{} ({} ago)", e.outcome, human_secs(e.ago_secs));
    }
    if s.log_lines_dropped > 0 {
        println!("   log lines dropped: {}", s.log_lines_dropped);
    }
    if let Some(e) = &s.error {
        println!("       error: {}", safe_lines(e));
    }
    // The latest few refusals, each with what would allow it.
    if s.denials.total > 0 {
        println!("     refused: {} time(s); latest:", s.denials.total);
        for d in s.denials.recent.iter().rev().take(5) {
            let times = if d.count > 1 { format!(" ({}x)", d.count) } else { String::new() };
            println!("              {}: {}{times}; to allow it: {}", d.mechanism, safe(&d.what), safe(&d.fix));
        }
    }
    for w in &s.warnings {
        println!("     warning: {}", safe(w));
    }
    if let Some(c) = &s.cgroup {
        println!("      cgroup: {c}");
    }
    if lines > 0 && !s.log_tail.is_empty() {
        println!();
        print_tail(s, lines);
    }
}

fn signal_note(code: i32) -> String {
    if code > 128 && code < 128 + 65 {
        format!(" = killed by signal {}", code - 128)
    } else {
        String::new()
    }
}

fn human_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}min {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}min", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86400, s / 3600 % 24),
    }
}

fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let f = b as f64;
    if f >= K * K * K {
        format!("{:.1}G", f / K / K / K)
    } else if f >= K * K {
        format!("{:.1}M", f / K / K)
    } else if f >= K {
        format!("{:.1}K", f / K)
    } else {
        format!("{b}B")
    }
}

pub fn list(c: &ClientArgs) -> i32 {
    let r = match request(c, &Request::List {}) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let rows = r.result.as_array().cloned().unwrap_or_default();
    let width = rows.iter().filter_map(|v| v["name"].as_str()).map(str::len).max().unwrap_or(4).max(4);
    println!("{:width$}  {:<18} {:>8} {:>10} {:>8}  {:<8} DESCRIPTION", "UNIT", "STATE", "PID", "UPTIME", "RESTARTS", "ENABLED");
    for v in &rows {
        let pid = v["main_pid"].as_i64().map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let up = v["uptime_secs"].as_u64().map(human_secs).unwrap_or_else(|| "-".into());
        println!(
            "{:width$}  {:<18} {:>8} {:>10} {:>8}  {:<8} {}",
            v["name"].as_str().unwrap_or("?"),
            v["state"].as_str().unwrap_or("?"),
            pid,
            up,
            v["restarts"].as_u64().unwrap_or(0),
            if v["enabled"].as_bool().unwrap_or(false) { "yes" } else { "no" },
            safe(v["description"].as_str().unwrap_or("")),
        );
        if let Some(e) = v["error"].as_str() {
            println!("{:width$}  {}", "", safe(e.lines().next().unwrap_or("")));
        }
    }
    println!("\n{} units", rows.len());
    0
}

pub fn logs(a: &LogsArgs) -> i32 {
    let req = Request::Logs { unit: unit_args(std::slice::from_ref(&a.unit)).remove(0), lines: a.lines, follow: a.follow };
    let mut client = match Client::connect(&socket(&a.client)).and_then(|mut c| c.send(&req).map(|_| c)) {
        Ok(c) => c,
        Err(e) => return report_client(e),
    };
    let first = match client.next_reply() {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("capexec: the daemon closed the connection without a reply");
            return EXIT_FAIL;
        }
        Err(e) => return report_client(e),
    };
    if !first.ok {
        return if a.client.json {
            print_json(&first);
            EXIT_FAIL
        } else {
            fail(&first)
        };
    }
    if a.client.json {
        println!("{}", serde_json::to_string(&first.result).expect("serialisable"));
    } else {
        if first.result["file"].is_null() {
            eprintln!(
                "capexec: {0} logs to the journal; these are the last lines the daemon keeps, `journalctl CAPEXEC_UNIT={0}` has them all",
                first.result["unit"].as_str().unwrap_or("?")
            );
        }
        for l in first.result["lines"].as_array().into_iter().flatten() {
            println!("{}", safe(l.as_str().unwrap_or("")));
        }
    }
    if a.follow {
        use std::io::Write;
        loop {
            match client.next_reply() {
                Ok(Some(r)) => {
                    let line = r.result["line"].as_str().unwrap_or("");
                    let out = if a.client.json { serde_json::to_string(&r.result).expect("serialisable") } else { safe(line).into_owned() };
                    if writeln!(std::io::stdout(), "{out}").and_then(|_| std::io::stdout().flush()).is_err() {
                        return 0;
                    }
                }
                Ok(None) => return 0,
                Err(e) => return report_client(e),
            }
        }
    }
    0
}

pub fn enable(a: &EnableArgs, on: bool) -> i32 {
    let units = unit_args(&a.units);
    let req = if on { Request::Enable { units, now: a.now } } else { Request::Disable { units, now: a.now } };
    let r = match request(&a.client, &req) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for v in r.result.as_array().into_iter().flatten() {
        let what = if v["enabled"].as_bool() == Some(true) { "enabled" } else { "disabled" };
        match v["state"].as_str() {
            Some(state) => println!("{}: {what}, {state}", v["name"].as_str().unwrap_or("?")),
            None => println!("{}: {what}", v["name"].as_str().unwrap_or("?")),
        }
    }
    0
}
