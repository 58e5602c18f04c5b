//! RPM v4 package format. Parsers never trust a length or count from the input. Knows nothing
//! about crypto signatures; it only checks the package's own integrity digests, because a
//! signer must refuse corrupt packages.
//!
//! Reading: [`Package::open`] → lead, [`SignatureHeader`], main [`Header`];
//! [`Package::into_payload`] → decompressed stream; [`CpioReader`] over it yields each header
//! file's content by index. Writing: [`SignatureHeader::with_verity`] → [`RewritePlan`].
#![forbid(unsafe_code)]

pub mod base64;
pub mod cpio;
pub mod digest;
pub mod error;
pub mod files;
pub mod header;
pub mod lead;
pub mod package;
pub mod payload;
mod reader;
pub mod sighdr;
pub mod tags;
#[cfg(any(test, feature = "test-helpers"))]
#[doc(hidden)]
pub mod test_helpers;

pub use cpio::{CpioEntry, CpioReader};
pub use digest::DigestStream;
pub use error::{Error, Result};
pub use files::{FileEntry, FileList};
pub use header::{Header, HeaderBuilder, HeaderKind, IndexEntry, OwnedEntry, TagType};
pub use lead::Lead;
pub use package::{HeaderDigests, Package, PackageHeaders};
pub use payload::{
    Compressor, Decoder, LendChunks, LentChunk, PayloadReader, PayloadSummary, RawPayload,
};
pub use sighdr::{RewriteMode, RewritePlan, SignatureHeader};
