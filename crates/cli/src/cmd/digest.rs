//! `rpm-verity digest`: fs-verity digests of files, byte-identical to `fsverity digest`.
//!
//! Output forms (as fsverity-utils 1.5): `sha256:<hex> FILE`; `--compact` prints only the hex;
//! `--for-builtin-sig` prints the hex of the 44/76-byte formatted digest instead of the digest.
//! With several files, `--out-descriptor` gets their descriptors one after another and
//! `--out-merkle-tree` gets each tree written over the previous one from offset 0 (what
//! fsverity's positioned writes produce). Unlike fsverity, output files appear only when every
//! input succeeded.

use std::io::{self, BufWriter, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fsverity::DigestBuilder;

use verity_package::AtomicFile;

use crate::args::{DigestOptions, JobsOption};
use crate::render;

/// Files at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_SIZE: u64 = 64 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Files to digest.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    #[command(flatten)]
    options: DigestOptions,

    /// Print only the hex digest, without the algorithm prefix and file name.
    #[arg(long)]
    compact: bool,

    /// Print the formatted digest that built-in signatures sign ("FSVerity", algorithm, size,
    /// digest) in hex, instead of the digest.
    #[arg(long)]
    for_builtin_sig: bool,

    /// Write the Merkle tree (root-most level first) to this file.
    #[arg(long, value_name = "FILE")]
    out_merkle_tree: Option<PathBuf>,

    /// Write the 256-byte fs-verity descriptor to this file.
    #[arg(long, value_name = "FILE")]
    out_descriptor: Option<PathBuf>,

    #[command(flatten)]
    jobs: JobsOption,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let params = args.options.params()?;
    let threads = args.jobs.threads()?;
    crate::util::remove_temp_files_on_signal()?;
    let mut tree_out = create_output(args.out_merkle_tree.as_deref(), "--out-merkle-tree")?;
    let mut desc_out = create_output(args.out_descriptor.as_deref(), "--out-descriptor")?;

    let stdout = io::stdout();
    for path in &args.files {
        let mut builder = DigestBuilder::new(&params).with_threads(threads.clone());
        if tree_out.is_some() {
            builder = builder.with_tree_output();
        }
        let fin = digest_one(builder, path)?;
        if let Some(out) = &mut tree_out {
            let name = args.out_merkle_tree.as_deref().unwrap_or(Path::new(""));
            let tree = fin.tree.expect("tree output was asked for");
            let file = out.file();
            file.rewind()
                .and_then(|_| tree.write_to(BufWriter::with_capacity(1 << 20, &mut *file)))
                .with_context(|| format!("cannot write Merkle tree to {}", name.display()))?;
        }
        if let Some(out) = &mut desc_out {
            let name = args.out_descriptor.as_deref().unwrap_or(Path::new(""));
            out.write_all(&fin.descriptor.to_bytes())
                .with_context(|| format!("cannot write descriptor to {}", name.display()))?;
        }

        let hex = if args.for_builtin_sig {
            hex::encode(fin.digest.formatted())
        } else {
            hex::encode(fin.digest.as_bytes())
        };
        let mut line = Vec::with_capacity(200);
        if !args.compact && !args.for_builtin_sig {
            line.extend_from_slice(fin.digest.algorithm().name().as_bytes());
            line.push(b':');
        }
        line.extend_from_slice(hex.as_bytes());
        if !args.compact {
            line.push(b' ');
            line.extend_from_slice(path.as_os_str().as_bytes());
        }
        line.push(b'\n');
        let mut so = stdout.lock();
        so.write_all(&line)
            .and_then(|_| so.flush())
            .context("cannot write to standard output")?;
    }

    for (out, name) in [
        (tree_out, &args.out_merkle_tree),
        (desc_out, &args.out_descriptor),
    ] {
        if let (Some(out), Some(name)) = (out, name) {
            out.commit()
                .with_context(|| format!("cannot write {}", name.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Created before any hashing so that an unwritable destination fails fast, like fsverity.
fn create_output(path: Option<&Path>, option: &str) -> anyhow::Result<Option<AtomicFile>> {
    path.map(|p| {
        AtomicFile::create(p)
            .with_context(|| format!("cannot create {option} file {}", p.display()))
    })
    .transpose()
}

fn digest_one(builder: DigestBuilder, path: &Path) -> anyhow::Result<fsverity::Finished> {
    let mut builder = builder;
    let (file, size) =
        fsverity::open_regular_file(path).with_context(|| path.display().to_string())?;
    let pb = if size >= PROGRESS_MIN_SIZE {
        render::progress_bar(size, &path.display().to_string())
    } else {
        indicatif::ProgressBar::hidden()
    };
    builder
        .read_file(&file, size, |n| pb.inc(n))
        .with_context(|| format!("{}: read failed", path.display()))?;
    pb.finish_and_clear();
    builder
        .finish_all()
        .with_context(|| format!("{}: cannot keep the Merkle tree", path.display()))
}
