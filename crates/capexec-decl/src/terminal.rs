//! Text from outside on its way to a person's terminal: a service's log lines
//! and `STATUS=` text, the paths and names in the broker's refusals (chosen by
//! the service), the lines of a declaration file quoted in an error.
//!
//! A terminal interprets some bytes: escape sequences can move the cursor,
//! rewrite what was printed before, set the window title or, on some
//! terminals, answer back with input. So whatever capexec prints of such text
//! goes through [`safe`], escaped as journalctl does; log files (and `--json`,
//! whose encoding escapes control characters anyway) keep the raw bytes.

use std::borrow::Cow;

/// `s` with every character a terminal would act on written as an escape:
/// C0 controls except tab (`\n`, `\r`, `\e` ... as `\xNN` or their C name),
/// DEL, the C1 controls (U+0080–U+009F, which some terminals take as CSI),
/// and the Unicode bidirectional overrides and isolates, which reorder what
/// the reader sees (the "Trojan Source" characters). A backslash is doubled
/// only when the text needs escaping at all, so plain text stays as it is.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Multi-line text (an error with its context lines): each line made safe,
/// the line breaks kept.
pub fn safe_lines(s: &str) -> String {
    s.split('\n').map(safe).collect::<Vec<_>>().join("\n")
}

fn needs_escape(c: char) -> bool {
    match c {
        '\t' => false,
        c if (c as u32) < 0x20 || c == '\u{7f}' => true,
        '\u{80}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// Writes `args` and a newline to standard error in one write(2). Standard
/// error is unbuffered, so `eprintln!` writes each piece of its format on its
/// own; where the service shares the stream (`capexec exec`, `capexec run`)
/// its own output then lands inside capexec's line. A line up to PIPE_BUF
/// (4096 bytes) written once stays whole in a pipe.
pub fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut line = args.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn plain_text_is_untouched() {
        for s in ["", "nginx: worker process started", "tab\there", "ümlaut, 日本語, back\\slash"] {
            assert!(matches!(safe(s), std::borrow::Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn what_a_terminal_acts_on_is_escaped() {
        // Clear the screen, set the title, move up, overwrite the line.
        assert_eq!(safe("\x1b[2J\x1b]0;owned\x07\x1b[1A\rok"), "\\x1b[2J\\x1b]0;owned\\x07\\x1b[1A\\rok");
        assert_eq!(safe("a\nb\u{7f}"), "a\\nb\\x7f");
        // A C1 CSI and the bidi override; the backslash is kept distinguishable.
        assert_eq!(safe("\u{9b}2J \u{202e}txt.exe \\x1b"), "\\x9b2J \\u{202e}txt.exe \\\\x1b");
        assert_eq!(super::safe_lines("error at 1:2\n  \x1b[31mkey\n"), "error at 1:2\n  \\x1b[31mkey\n");
        for s in ["\x1b", "\u{9b}", "\u{2067}", "\0"] {
            assert!(!safe(s).chars().any(|c| c.is_control() || ('\u{2066}'..='\u{2069}').contains(&c)), "{s:?}");
        }
    }
}
