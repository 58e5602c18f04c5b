//! The man page and shell completions generated from the clap definitions, checked with the
//! real consumers: `man` renders the page, bash loads the completion.

use std::io::Write;
use std::process::{Command, Stdio};

fn bin() -> &'static str {
    verity_test_support::bin!()
}

fn generate(what: &str) -> String {
    let out = Command::new(bin())
        .args(["--generate", what])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Subcommands and their long options, from `--help` (what a user sees).
fn commands_and_options() -> Vec<(String, Vec<String>)> {
    let help = Command::new(bin()).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 9, "{help}");
    commands
        .into_iter()
        .map(|c| {
            let h = Command::new(bin()).args([&c, "--help"]).output().unwrap();
            let h = String::from_utf8(h.stdout).unwrap();
            let opts = h
                .split_whitespace()
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .map(|w| {
                    w.trim_end_matches(|ch: char| !ch.is_alphanumeric())
                        .to_string()
                })
                .filter(|w| w != "--help")
                .collect();
            (c, opts)
        })
        .collect()
}

#[test]
fn man_renders_every_subcommand_and_option() {
    let page = generate("man");
    let mut man = Command::new("man")
        .args(["-l", "-"])
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_FORMATTING", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("man (Debian man-db) is installed by scripts/install-deps");
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    assert!(out.status.success());
    // man's output on a pipe may still carry overstrike bold ("X\bX"): keep one of each.
    let raw = String::from_utf8_lossy(&out.stdout);
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(ch) = chars.next() {
        if chars.peek() == Some(&'\u{8}') {
            chars.next();
            continue;
        }
        text.push(ch);
    }
    for (cmd, opts) in commands_and_options() {
        let heading = format!("RPM-VERITY {}", cmd.to_uppercase());
        assert!(text.contains(&heading), "no section {heading}");
        for o in opts {
            assert!(text.contains(&o), "{o} of {cmd} missing from the man page");
        }
    }
    assert!(text.contains("Exit status"), "exit codes on the page");
}

#[test]
fn bash_completion_loads() {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <({} --generate complete-bash) && complete -p rpm-verity",
            bin()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rpm-verity"));
    for shell in ["complete-zsh", "complete-fish"] {
        let script = generate(shell);
        for cmd in ["sign", "verify", "enable", "audit", "keyring"] {
            assert!(script.contains(cmd), "{shell} lacks {cmd}");
        }
    }
}

#[test]
fn help_and_usage_errors() {
    let out = Command::new(bin())
        .args(["help", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let a = Command::new(bin()).args(["help", "sign"]).output().unwrap();
    let b = Command::new(bin())
        .args(["sign", "--help"])
        .output()
        .unwrap();
    assert_eq!(a.stdout, b.stdout, "help sign = sign --help");
    let out = Command::new(bin())
        .args(["sign", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("rpm-verity: error: "), "{err}");
}
