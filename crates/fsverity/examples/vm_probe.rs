//! Drives `fsverity::linux` from a shell, for the VM tests (tests/vm, crates/cli/tests/vm_*.rs).
//!
//! Every command prints one line. Failures print `error <Variant> errno=<n>: <message>` and
//! exit 1, so a guest script can check which typed error the kernel's answer became.
//!
//! ```text
//! vm_probe enable FILE [--sig SIGFILE] [--alg sha256|sha512] [--block-size N] [--salt HEX]
//!                      [--hold-writer | --use-write-fd]
//! vm_probe measure FILE          vm_probe is-verity FILE       vm_probe read-sig FILE
//! vm_probe add-cert DER          vm_probe list-keys            vm_probe support
//! vm_probe require-signatures [0|1]
//! ```
use std::fs::{self, OpenOptions};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::ExitCode;

use fsverity::linux::{
    self, EnableError, IsVerityError, KeyringError, MeasureError, OpenError, SysctlError,
};
use fsverity::HashAlgorithm;

/// Any of the library's kernel errors: each operation has its own type, and a step often
/// chains two (open, then measure).
#[derive(Debug)]
enum Error {
    Open(OpenError),
    Enable(EnableError),
    Measure(MeasureError),
    IsVerity(IsVerityError),
    Keyring(KeyringError),
    Sysctl(SysctlError),
}

macro_rules! from_errors {
    ($($v:ident($t:ty)),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$v(e)
            }
        }
    )*};
}
from_errors!(
    Open(OpenError),
    Enable(EnableError),
    Measure(MeasureError),
    IsVerity(IsVerityError),
    Keyring(KeyringError),
    Sysctl(SysctlError)
);

/// Prints the inner error's variant name, errno and message: the guest scripts check those.
fn fail(e: &Error) -> ExitCode {
    let (debug, errno, msg) = match e {
        Error::Open(e) => (format!("{e:?}"), e.errno(), e.to_string()),
        Error::Enable(e) => (format!("{e:?}"), e.errno(), e.to_string()),
        Error::Measure(e) => (format!("{e:?}"), e.errno(), e.to_string()),
        Error::IsVerity(e) => (format!("{e:?}"), e.errno(), e.to_string()),
        Error::Keyring(e) => (format!("{e:?}"), e.errno(), e.to_string()),
        Error::Sysctl(e) => (format!("{e:?}"), e.errno(), e.to_string()),
    };
    let kind = debug.split([' ', '{', '(']).next().unwrap_or("?");
    let errno = errno.map_or("-".to_string(), |n| n.to_string());
    println!("error {kind} errno={errno}: {msg}");
    ExitCode::from(1)
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("vm_probe: {msg}");
    ExitCode::from(2)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage("no command");
    };
    let rest = &args[1..];
    match (cmd.as_str(), rest) {
        ("enable", [file, opts @ ..]) => enable(Path::new(file), opts),
        ("measure", [file]) => {
            match open(file).and_then(|f| Ok(linux::measure_verity(f.as_fd())?)) {
                Ok(Some(d)) => println!("{d}"),
                Ok(None) => println!("not-verity"),
                Err(e) => return fail(&e),
            }
            ExitCode::SUCCESS
        }
        ("is-verity", [file]) => {
            // Opening a signed verity file whose cert is missing fails; is_verity needs only
            // O_PATH-like access, so use a plain open and report open errors typed.
            match open(file).and_then(|f| Ok(linux::is_verity(f.as_fd())?)) {
                Ok(v) => println!("{v}"),
                Err(e) => return fail(&e),
            }
            ExitCode::SUCCESS
        }
        ("read-sig", [file]) => {
            match open(file).and_then(|f| Ok(linux::read_signature(f.as_fd())?)) {
                Ok(Some(sig)) => {
                    println!("signature {} bytes sha256 {}", sig.len(), sha256_hex(&sig))
                }
                Ok(None) => println!("no-signature"),
                Err(e) => return fail(&e),
            }
            ExitCode::SUCCESS
        }
        ("add-cert", [der]) => {
            let data = match fs::read(der) {
                Ok(d) => d,
                Err(e) => return usage(&format!("{der}: {e}")),
            };
            match linux::add_certificate(&data) {
                Ok(id) => println!("key {id}"),
                Err(e) => return fail(&e.into()),
            }
            ExitCode::SUCCESS
        }
        ("list-keys", []) => {
            match linux::list_keyring() {
                Ok(keys) => {
                    println!("{} keys", keys.len());
                    for k in keys {
                        println!("key {} {} {}", k.id, k.key_type, k.description);
                    }
                }
                Err(e) => return fail(&e.into()),
            }
            ExitCode::SUCCESS
        }
        ("require-signatures", []) => match linux::require_signatures() {
            Ok(v) => {
                println!("{}", u8::from(v));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.into()),
        },
        ("require-signatures", [v]) => match linux::set_require_signatures(v == "1") {
            Ok(()) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.into()),
        },
        ("support", []) => {
            let s = linux::kernel_support();
            println!(
                "builtin_signatures={} keyring={} require_signatures={} ext4_verity={}",
                s.builtin_signatures,
                s.keyring.map_or("none".into(), |k| format!("{k:#x}")),
                s.require_signatures
                    .map_or("none".into(), |v| v.to_string()),
                s.ext4_verity.map_or("unknown".into(), |v| v.to_string()),
            );
            ExitCode::SUCCESS
        }
        _ => usage("unknown command or wrong arguments"),
    }
}

fn enable(file: &Path, opts: &[String]) -> ExitCode {
    let mut sig = None;
    let mut alg = HashAlgorithm::Sha256;
    let mut block_size = 4096u32;
    let mut salt = Vec::new();
    let mut hold_writer = false;
    let mut use_write_fd = false;
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match o.as_str() {
            "--sig" => match it.next().map(fs::read) {
                Some(Ok(s)) => sig = Some(s),
                _ => return usage("--sig needs a readable file"),
            },
            "--alg" => match it.next().and_then(|a| HashAlgorithm::from_name(a)) {
                Some(a) => alg = a,
                None => return usage("--alg needs sha256 or sha512"),
            },
            "--block-size" => match it.next().and_then(|b| b.parse().ok()) {
                Some(b) => block_size = b,
                None => return usage("--block-size needs a number"),
            },
            "--salt" => match it.next().and_then(|h| hex::decode(h).ok()) {
                Some(s) => salt = s,
                None => return usage("--salt needs hex"),
            },
            // Another descriptor open for writing while we enable through a read-only one.
            "--hold-writer" => hold_writer = true,
            // What rpm 4.18's plugin does: enable through the fd the content was written with.
            "--use-write-fd" => use_write_fd = true,
            other => return usage(&format!("unknown option {other}")),
        }
    }
    let writer = if hold_writer || use_write_fd {
        match OpenOptions::new().write(true).open(file) {
            Ok(w) => Some(w),
            Err(e) => return usage(&format!("{}: {e}", file.display())),
        }
    } else {
        None
    };
    let result = if use_write_fd {
        let w = writer.as_ref().expect("opened above");
        linux::enable_verity(w.as_fd(), alg, block_size, &salt, sig.as_deref()).map_err(Error::from)
    } else {
        linux::open_readonly(file)
            .map_err(Error::from)
            .and_then(|f| {
                Ok(linux::enable_verity(
                    f.as_fd(),
                    alg,
                    block_size,
                    &salt,
                    sig.as_deref(),
                )?)
            })
    };
    drop(writer);
    match result {
        Ok(()) => {
            println!("enabled");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn open(file: &str) -> Result<fs::File, Error> {
    Ok(linux::open_readonly(Path::new(file))?)
}
