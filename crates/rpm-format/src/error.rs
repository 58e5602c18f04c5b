use thiserror::Error;

/// Everything that can be wrong with a package, in words a user can act on. The caller adds
/// the package path.
#[derive(Debug, Error)]
pub enum Error {
    #[error("not an RPM package: {0}")]
    NotRpm(String),
    #[error("bad lead: {0}")]
    BadLead(String),
    #[error("bad {what}: {msg}")]
    BadHeader { what: &'static str, msg: String },
    #[error("truncated {what}: needed {needed} bytes, got {got}")]
    Truncated {
        what: &'static str,
        needed: u64,
        got: u64,
    },
    #[error("truncated {what}")]
    UnexpectedEof { what: &'static str },
    #[error("reading {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("tag {tag} has type {found}, expected {expected}")]
    TagType { tag: u32, found: u32, expected: u32 },
    #[error("main header has no {0} tag")]
    MissingTag(&'static str),
    #[error("bad file list in main header: {0}")]
    BadFileList(String),
    #[error("{what} digest mismatch: expected {expected}, computed {actual}")]
    DigestMismatch {
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{what} mismatch: header says {expected}, package has {actual}")]
    SizeMismatch {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported digest algorithm {0} for the payload digest")]
    UnknownDigestAlgo(u32),
    #[error("unknown payload compressor {0:?}")]
    UnknownCompressor(String),
    #[error("unsupported payload format {0:?} (only cpio)")]
    UnknownPayloadFormat(String),
    #[error("corrupt {compressor} payload: {source}")]
    Decompress {
        compressor: String,
        #[source]
        source: std::io::Error,
    },
    /// Not corruption: a stream rpm itself refuses to decode because of what it would cost.
    #[error("{compressor} payload refused: {msg}")]
    DecoderMemory {
        compressor: &'static str,
        msg: String,
    },
    /// rpm stops reading at the cpio trailer; decompressing what follows it is unbounded work.
    #[error(
        "payload refused: more than {limit} bytes of decompressed data after byte {at}, where \
         its cpio archive was read to"
    )]
    TrailingPayload { at: u64, limit: u64 },
    #[error("corrupt cpio payload at byte {offset}: {msg}")]
    Cpio { offset: u64, msg: String },
    #[error("payload entry {name:?} is not a file of the package header")]
    NotInHeader { name: String },
    #[error("payload has {path:?} twice")]
    DuplicateEntry { path: String },
    #[error("payload contains %ghost file {path:?}")]
    GhostInPayload { path: String },
    #[error("file {path:?} of the header is missing from the payload")]
    MissingFromPayload { path: String },
    #[error("size of {path:?} in the payload is {payload}, header says {header}")]
    FileSizeMismatch {
        path: String,
        header: u64,
        payload: u64,
    },
    #[error("cannot rewrite signature header: {0}")]
    Rewrite(String),
    #[error("invalid base64: {0}")]
    Base64(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Turns an I/O error raised inside a reader chain (payload, cpio content) back into our
    /// error when it carries one, so callers can report e.g. a digest mismatch as such.
    pub fn from_io(what: &'static str, e: std::io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            let kind = e.kind();
            if let Some(Ok(inner)) = e.into_inner().map(|b| b.downcast::<Error>()) {
                return *inner;
            }
            return Error::Io {
                what,
                source: kind.into(),
            };
        }
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::UnexpectedEof { what };
        }
        Error::Io { what, source: e }
    }

    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }
}
