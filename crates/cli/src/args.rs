//! Command-line options shared by several commands, each defined once and `flatten`ed where
//! used. The digest options are spelled like fsverity-utils' so that scripts carry over.
//!
//! Whatever can be judged from one value alone is checked in the clap value parser, so a bad
//! value is a usage error (exit code 2, as `fsverity` does); checks that need two options
//! together (block size too small for the hash, salt length) come from
//! [`fsverity::Params::new`] and exit with 1, also as `fsverity` does.

use anyhow::Context;
use fsverity::{HashAlgorithm, Params, Threads};

#[derive(clap::Args, Clone, Debug)]
pub struct DigestOptions {
    /// Hash algorithm of the Merkle tree and digest.
    #[arg(long = "hash-alg", value_name = "HASH_ALG", default_value = "sha256", value_parser = parse_hash_alg)]
    pub hash_alg: HashAlgorithm,

    /// Merkle tree block size in bytes (a power of two; rpm always uses 4096).
    #[arg(long = "block-size", value_name = "BLOCK_SIZE", default_value_t = fsverity::DEFAULT_BLOCK_SIZE, value_parser = parse_block_size)]
    pub block_size: u32,

    /// Salt, in hex, hashed in front of every block (rpm never uses one).
    #[arg(long, value_name = "SALT", value_parser = parse_salt)]
    pub salt: Option<Salt>,
}

/// A salt decoded from hex (a newtype so that clap treats it as one value, not a list).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Salt(pub Vec<u8>);

impl DigestOptions {
    pub fn params(&self) -> anyhow::Result<Params> {
        let salt = self.salt.as_ref().map_or(&[][..], |s| &s.0[..]);
        Params::new(self.hash_alg, self.block_size, salt).context("invalid fs-verity parameters")
    }
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct JobsOption {
    /// Worker threads: 0 or absent uses every core; 1 works on the calling thread only.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

impl JobsOption {
    /// For hashing one large file.
    pub fn threads(&self) -> anyhow::Result<Threads> {
        Ok(Threads::from_jobs(self.jobs.unwrap_or(0))?)
    }

    /// How many workers: one per core unless told.
    pub fn count(&self) -> usize {
        match self.jobs {
            Some(n) if n > 0 => n,
            _ => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }
}

/// `-q`/`-v`, the same on every command that reports per file or per package.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct Verbosity {
    /// Print only problems and errors, no summary.
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print every file, not only problems.
    #[arg(long, short)]
    pub verbose: bool,
}

/// `--json`: one JSON document on stdout instead of text.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct JsonOption {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// fs-verity hash algorithm names, in any case (rpmsign's `--verityalgo` takes `SHA512`).
pub fn parse_hash_alg(s: &str) -> Result<HashAlgorithm, String> {
    HashAlgorithm::from_name(&s.to_ascii_lowercase())
        .ok_or_else(|| format!("unknown hash algorithm '{s}' (available: sha256 sha512)"))
}

fn parse_block_size(s: &str) -> Result<u32, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("invalid block size '{s}': not a number"))?;
    if !n.is_power_of_two() {
        return Err(format!("block size {n} is not a power of two"));
    }
    if n > u64::from(fsverity::MAX_BLOCK_SIZE) {
        return Err(format!(
            "block size {n} is too large; at most {} is supported",
            fsverity::MAX_BLOCK_SIZE
        ));
    }
    Ok(n as u32)
}

fn parse_salt(s: &str) -> Result<Salt, String> {
    match fsverity::parse_hex_salt(s) {
        Ok(v) => Ok(Salt(v)),
        // Too long is reported by Params::new with the exit code fsverity uses (1); keep the
        // decoded bytes so that it can say how long.
        Err(fsverity::Error::SaltTooLong(_)) => decode_hex_unbounded(s).map(Salt),
        Err(e) => Err(e.to_string()),
    }
}

/// Argument strings are bounded by the OS (ARG_MAX), so decoding a long one is harmless.
fn decode_hex_unbounded(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|_| fsverity::Error::BadSaltHex.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        o: DigestOptions,
        #[command(flatten)]
        j: JobsOption,
    }

    fn parse(args: &[&str]) -> Result<T, clap::Error> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_are_rpm_params() {
        let t = parse(&[]).unwrap();
        assert_eq!(t.o.params().unwrap(), Params::default());
        assert!(matches!(t.j.threads().unwrap(), Threads::CurrentPool));
        let t = parse(&["--jobs", "1"]).unwrap();
        assert!(matches!(t.j.threads().unwrap(), Threads::Sequential));
    }

    #[test]
    fn values() {
        let t = parse(&[
            "--hash-alg=sha512",
            "--block-size",
            "1024",
            "--salt=61626364",
        ])
        .unwrap();
        let p = t.o.params().unwrap();
        assert_eq!(p.hash_algorithm(), HashAlgorithm::Sha512);
        assert_eq!(p.block_size(), 1024);
        assert_eq!(p.salt(), b"abcd");
        let t = parse(&["--salt="]).unwrap();
        assert!(t.o.params().unwrap().salt().is_empty());
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["--hash-alg=sha1"][..],
            &["--block-size=1000"],
            &["--block-size=abc"],
            &["--block-size=0"],
            &["--block-size=4294967296"],
            &["--salt=zz"],
            &["--salt=0"],
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} accepted"));
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        let e = parse(&["--block-size=1000"]).err().unwrap();
        assert!(
            e.to_string()
                .contains("block size 1000 is not a power of two"),
            "{e}"
        );
    }

    #[test]
    fn combination_errors() {
        let t = parse(&["--block-size=32"]).unwrap();
        let e = t.o.params().unwrap_err();
        assert!(format!("{e:#}").contains("too small"), "{e:#}");
        let long = "00".repeat(33);
        let t = parse(&["--salt", &long]).unwrap();
        let e = t.o.params().unwrap_err();
        assert!(
            format!("{e:#}").contains("salt is 33 bytes; at most 32 are allowed"),
            "{e:#}"
        );
    }
}

/// What `enable` and `audit` share: which installed system, which certificates to trust in user
/// space, and how to report. One definition, so that the two commands cannot drift apart.
#[derive(clap::Args, Clone, Debug)]
pub struct InstalledOptions {
    /// The installed system's root directory.
    #[arg(long, default_value = "/")]
    pub root: std::path::PathBuf,

    /// rpm database directory inside the root (default: /var/lib/rpm, /usr/lib/sysimage/rpm).
    #[arg(long, value_name = "DIR")]
    pub dbpath: Option<std::path::PathBuf>,

    /// Trusted certificate (PEM or DER) for checks in user space (verity off, --dry-run, or a
    /// certificate not in the keyring); repeatable. Default: the files in /etc/rpm-verity/certs.
    #[arg(long, value_name = "CERT")]
    pub cert: Vec<std::path::PathBuf>,

    /// Also take %config files that are not executable (rpm's %_fsverity_sign_config_files).
    #[arg(long)]
    pub config: bool,

    #[command(flatten)]
    pub json: JsonOption,

    #[command(flatten)]
    pub verbosity: Verbosity,

    #[command(flatten)]
    pub jobs: JobsOption,
}

impl InstalledOptions {
    pub fn open(&self) -> anyhow::Result<verity_system::installed::InstalledSystem> {
        Ok(verity_system::installed::InstalledSystem::open(
            &self.root,
            self.dbpath.as_deref(),
            &self.cert,
        )?)
    }
}
