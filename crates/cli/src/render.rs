//! Text output shared by the commands: progress bars and sizes.
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// A line for the terminal with its control characters spelled out (`\n`, `\t`, `\x1b`):
/// file names come from packages, and a name holding an escape sequence must not be able to
/// rewrite the screen or forge a verdict line. Every text line naming something from a
/// package goes through here; JSON is escaped by serde.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A progress bar on stderr, hidden unless stderr is a terminal.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A counting progress bar on stderr (packages, files), hidden unless stderr is a terminal.
pub fn count_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !io::stderr().is_terminal() || total < 2 {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Sizes the way people read them: `512 B`, `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// One JSON document on stdout, as every `--json` prints it.
pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    use anyhow::Context;
    let text = serde_json::to_string_pretty(v).context("cannot serialize the report")?;
    println!("{text}");
    Ok(())
}

/// A per-file (or per-package) line of `enable`/`audit`: status in a fixed-width column, then
/// what it is about and why.
pub fn status_line(status: &str, subject: &str, detail: Option<&str>) -> String {
    let line = match detail {
        Some(d) => format!("{status:<12} {subject}: {d}"),
        None => format!("{status:<12} {subject}"),
    };
    escape(&line).into_owned()
}

/// `3 ok, 1 modified`: counts in the statuses' own order, or `none` when there are none.
pub fn counts<S: Copy + Ord + std::fmt::Display>(
    counts: &std::collections::BTreeMap<S, usize>,
    lowercase: bool,
    none: &str,
) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| {
            let name = s.to_string();
            format!("{n} {}", if lowercase { name.to_lowercase() } else { name })
        })
        .collect();
    if parts.is_empty() {
        none.to_string()
    } else {
        parts.join(", ")
    }
}

pub use verity_system::outcome::plural;

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn control_characters_are_spelled_out() {
        assert_eq!(escape("/opt/t/plain café"), "/opt/t/plain café");
        assert_eq!(
            escape("a\x1b[2Jb\nc\td\x7f\u{9b}"),
            "a\\x1b[2Jb\\nc\\td\\x7f\\x9b"
        );
    }
}
