//! What `rpmsign --signverity` users already configured: the signing key, certificate and
//! algorithm from rpm's macros (`%_file_signing_key`, `%_file_signing_cert`,
//! `%_verity_algorithm`, read through `rpm --eval`), and `--fskpass`'s passphrase prompt.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The macros rpmsign reads for file signing; `None` where unset (or rpm is not installed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SigningMacros {
    pub key: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub algorithm: Option<String>,
}

const MACROS: [&str; 3] = [
    "_file_signing_key",
    "_file_signing_cert",
    "_verity_algorithm",
];

impl SigningMacros {
    /// Asks `rpm --eval` (so `~/.rpmmacros`, `/etc/rpm/macros*` and `--define`s in
    /// `RPM_CONFIGDIR` all count, as for rpmsign). No rpm: nothing set.
    pub fn read() -> SigningMacros {
        let mut cmd = Command::new("rpm");
        for m in MACROS {
            cmd.arg("--eval").arg(format!("%{{{m}}}"));
        }
        let out = match cmd.stdin(Stdio::null()).stderr(Stdio::null()).output() {
            Ok(o) if o.status.success() => o.stdout,
            _ => return SigningMacros::default(),
        };
        Self::parse(&String::from_utf8_lossy(&out))
    }

    /// One line per macro, in [`MACROS`] order; an unset macro evaluates to itself.
    fn parse(text: &str) -> SigningMacros {
        let mut lines = text.lines();
        let mut next = |name: &str| {
            let v = lines.next()?.trim();
            let unset = v.is_empty() || v == format!("%{{{name}}}") || v == format!("%{name}");
            (!unset).then(|| v.to_string())
        };
        SigningMacros {
            key: next(MACROS[0]).map(PathBuf::from),
            cert: next(MACROS[1]).map(PathBuf::from),
            algorithm: next(MACROS[2]),
        }
    }
}

/// `--fskpass`: the passphrase from `--key-pass-file` or `$RPM_VERITY_KEY_PASS` when given
/// (scripts), else asked on the terminal with echo off.
pub fn fskpass(key: &Path, file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = verity_signing::read_key_passphrase(file)? {
        return Ok(p);
    }
    prompt(&format!("Enter passphrase for {}: ", key.display()))
}

/// Reads one line from `/dev/tty` with echo off, restoring the terminal afterwards.
fn prompt(question: &str) -> anyhow::Result<Vec<u8>> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context(
            "--fskpass: no terminal to ask for the passphrase on \
             (give --key-pass-file or set RPM_VERITY_KEY_PASS)",
        )?;
    let saved = tcgetattr(&tty).context("--fskpass: reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    (&tty).write_all(question.as_bytes())?;
    tcsetattr(&tty, OptionalActions::Flush, &quiet).context("--fskpass: turning echo off")?;
    let mut line = Vec::new();
    let read = std::io::BufReader::new(&tty).read_until(b'\n', &mut line);
    let restored = tcsetattr(&tty, OptionalActions::Flush, &saved);
    read.context("--fskpass: reading the passphrase")?;
    restored.context("--fskpass: restoring the terminal")?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.is_empty() {
        bail!("--fskpass: no passphrase given");
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_macros_evaluate_to_themselves() {
        let m = SigningMacros::parse(
            "%{_file_signing_key}\n%_file_signing_cert\n%{_verity_algorithm}\n",
        );
        assert_eq!(m, SigningMacros::default());
        let m = SigningMacros::parse("/k.pem\n/c.pem\nsha512\n");
        assert_eq!(m.key.as_deref(), Some(Path::new("/k.pem")));
        assert_eq!(m.cert.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(m.algorithm.as_deref(), Some("sha512"));
        assert_eq!(SigningMacros::parse(""), SigningMacros::default());
    }
}
