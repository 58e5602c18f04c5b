//! Reading a package front to back in one pass: lead, signature header, main header, then the
//! payload as a stream whose digests are checked as it goes by.

use std::io::Read;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::FileList;
use crate::header::{Header, HeaderKind};
use crate::lead::{Lead, LEAD_SIZE};
use crate::payload::{Compressor, PayloadExpectations, PayloadReader, RawPayload};
use crate::reader::{read_exact_or, read_full};
use crate::sighdr::{signature_padding, SignatureHeader};
use crate::tags;

/// Which header digests were present and matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderDigests {
    pub sha256: bool,
    pub sha1: bool,
}

/// A package whose headers have been read; the reader is positioned at the payload.
pub struct Package<R> {
    pub lead: Lead,
    pub signature: SignatureHeader,
    pub main: Header,
    reader: R,
}

impl<R: Read + Send + 'static> Package<R> {
    /// As [`Package::into_payload`], with reading and digest checks on their own thread.
    /// `md5 = false` skips the legacy MD5 when PAYLOADDIGEST is present.
    pub fn into_payload_threaded(self, md5: bool) -> Result<(PackageHeaders, PayloadReader<R>)> {
        let compressor = self.compressor()?;
        let archive_size = self.archive_size()?;
        let alt = self.uncompressed_digest()?;
        let (headers, raw) = self.into_raw_payload_with(md5)?;
        let reader = PayloadReader::threaded(compressor, raw, archive_size)?;
        Ok((headers, with_alt(reader, alt)?))
    }
}

impl<R: Read> Package<R> {
    /// Reads lead and headers and checks the main header's SHA-256/SHA-1 digests (rpmsign
    /// refuses corrupt packages, so must we).
    pub fn open(reader: R) -> Result<Package<R>> {
        let p = Package::open_unverified(reader)?;
        p.verify_header_digests()?;
        Ok(p)
    }

    /// Reads lead and headers without checking digests.
    pub fn open_unverified(mut reader: R) -> Result<Package<R>> {
        let mut lead = [0u8; LEAD_SIZE];
        let got = read_full(&mut reader, &mut lead).map_err(|e| Error::Io {
            what: "lead",
            source: e,
        })?;
        if got < LEAD_SIZE {
            return Err(Error::NotRpm(format!(
                "file too short for an RPM lead ({got} bytes)"
            )));
        }
        let lead = Lead::parse(&lead)?;
        let sig = Header::read(&mut reader, HeaderKind::Signature)?;
        let pad = signature_padding(sig.len());
        let mut padding = [0u8; 8];
        read_exact_or(&mut reader, &mut padding[..pad], "signature header padding")?;
        let main = Header::read(&mut reader, HeaderKind::Main)?;
        Ok(Package {
            lead,
            signature: SignatureHeader::new(sig),
            main,
            reader,
        })
    }

    /// Offset of the signature header (right after the lead).
    pub fn signature_offset(&self) -> u64 {
        LEAD_SIZE as u64
    }

    /// Signature header length on disk, padding included.
    pub fn signature_len_on_disk(&self) -> u64 {
        let l = self.signature.header().len();
        (l + signature_padding(l)) as u64
    }

    pub fn main_header_offset(&self) -> u64 {
        self.signature_offset() + self.signature_len_on_disk()
    }

    pub fn payload_offset(&self) -> u64 {
        self.main_header_offset() + self.main.len() as u64
    }

    pub fn is_source(&self) -> bool {
        !self.main.contains(tags::SOURCERPM)
    }

    /// Checks SHA256 (273) and SHA1 (269) of the signature header against the main header.
    pub fn verify_header_digests(&self) -> Result<HeaderDigests> {
        let sig = self.signature.header();
        let mut out = HeaderDigests::default();
        if let Some(want) = sig.get_string(tags::SIG_SHA256)? {
            let got = hex::encode(Sha256::digest(self.main.raw()));
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(Error::DigestMismatch {
                    what: "header SHA-256",
                    expected: want,
                    actual: got,
                });
            }
            out.sha256 = true;
        }
        if let Some(want) = sig.get_string(tags::SIG_SHA1)? {
            let got = hex::encode(Sha1::digest(self.main.raw()));
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(Error::DigestMismatch {
                    what: "header SHA-1",
                    expected: want,
                    actual: got,
                });
            }
            out.sha1 = true;
        }
        Ok(out)
    }

    pub fn compressor(&self) -> Result<Compressor> {
        if let Some(fmt) = self.main.get_string(tags::PAYLOADFORMAT)? {
            if fmt != "cpio" {
                return Err(Error::UnknownPayloadFormat(fmt));
            }
        }
        Compressor::from_tag(self.main.get_string(tags::PAYLOADCOMPRESSOR)?.as_deref())
    }

    pub fn files(&self) -> Result<FileList> {
        FileList::from_header(&self.main)
    }

    /// The digests the payload must match: PAYLOADDIGEST, MD5 (when `md5`), and SIZE.
    pub fn payload_expectations(&self, md5: bool) -> Result<PayloadExpectations> {
        let sig = self.signature.header();
        let mut exp = PayloadExpectations::default();
        if let Some(d) = self.main.get_string_array(tags::PAYLOADDIGEST)? {
            let algo = self.main.get_u32(tags::PAYLOADDIGESTALGO)?.unwrap_or(8);
            if let Some(first) = d.into_iter().next() {
                exp.payload_digest = Some((algo, first));
            }
        }
        if md5 {
            if let Some(m) = sig.get_bin(tags::SIG_MD5)? {
                let m: [u8; 16] = m.try_into().map_err(|_| Error::BadHeader {
                    what: "signature header",
                    msg: format!("MD5 tag has {} bytes", m.len()),
                })?;
                exp.md5 = Some(m);
            }
        }
        let size = match sig.get_u64(tags::SIG_LONGSIZE)? {
            Some(s) => Some(s),
            None => sig.get_u32(tags::SIG_SIZE)?.map(u64::from),
        };
        if let Some(s) = size {
            let h = self.main.len() as u64;
            if s < h {
                return Err(Error::SizeMismatch {
                    what: "package size (SIZE tag)",
                    expected: s,
                    actual: h,
                });
            }
            exp.payload_len = Some(s - h);
        }
        Ok(exp)
    }

    /// PAYLOADDIGESTALT (digest of the uncompressed payload) with its algorithm, if present.
    pub fn uncompressed_digest(&self) -> Result<Option<(u32, String)>> {
        let Some(d) = self.main.get_string_array(tags::PAYLOADDIGESTALT)? else {
            return Ok(None);
        };
        let algo = self.main.get_u32(tags::PAYLOADDIGESTALGO)?.unwrap_or(8);
        Ok(d.into_iter().next().map(|first| (algo, first)))
    }

    /// Uncompressed payload size recorded in the signature header (PAYLOADSIZE or
    /// LONGARCHIVESIZE).
    pub fn archive_size(&self) -> Result<Option<u64>> {
        let sig = self.signature.header();
        Ok(match sig.get_u64(tags::SIG_LONGARCHIVESIZE)? {
            Some(s) => Some(s),
            None => sig.get_u32(tags::SIG_PAYLOADSIZE)?.map(u64::from),
        })
    }

    /// Raw (compressed) payload with all digests checked on the fly.
    pub fn into_raw_payload(self) -> Result<(PackageHeaders, RawPayload<R>)> {
        self.into_raw_payload_with(true)
    }

    /// As [`Package::into_raw_payload`]; `md5 = false` skips the legacy MD5 when a stronger
    /// PAYLOADDIGEST exists (it costs as much as the SHA-256).
    pub fn into_raw_payload_with(self, md5: bool) -> Result<(PackageHeaders, RawPayload<R>)> {
        let has_payload_digest = self.main.contains(tags::PAYLOADDIGEST);
        let exp = self.payload_expectations(md5 || !has_payload_digest)?;
        let raw = RawPayload::new(self.reader, self.main.raw(), &exp)?;
        let headers = PackageHeaders {
            lead: self.lead,
            signature: self.signature,
            main: self.main,
        };
        Ok((headers, raw))
    }

    /// Decompressed payload (cpio) with digests and sizes checked by
    /// [`PayloadReader::finish`].
    pub fn into_payload(self) -> Result<(PackageHeaders, PayloadReader<R>)> {
        let compressor = self.compressor()?;
        let archive_size = self.archive_size()?;
        let alt = self.uncompressed_digest()?;
        let (headers, raw) = self.into_raw_payload()?;
        let reader = PayloadReader::new(compressor, raw, archive_size)?;
        Ok((headers, with_alt(reader, alt)?))
    }

    pub fn into_parts(self) -> (PackageHeaders, R) {
        (
            PackageHeaders {
                lead: self.lead,
                signature: self.signature,
                main: self.main,
            },
            self.reader,
        )
    }
}

/// The parsed front part of a package, kept after the payload stream has been split off.
#[derive(Debug, Clone)]
pub struct PackageHeaders {
    pub lead: Lead,
    pub signature: SignatureHeader,
    pub main: Header,
}

impl PackageHeaders {
    pub fn signature_len_on_disk(&self) -> u64 {
        let l = self.signature.header().len();
        (l + signature_padding(l)) as u64
    }

    pub fn main_header_offset(&self) -> u64 {
        LEAD_SIZE as u64 + self.signature_len_on_disk()
    }

    pub fn payload_offset(&self) -> u64 {
        self.main_header_offset() + self.main.len() as u64
    }

    pub fn files(&self) -> Result<FileList> {
        FileList::from_header(&self.main)
    }
}

fn with_alt<R: Read>(
    reader: PayloadReader<R>,
    alt: Option<(u32, String)>,
) -> Result<PayloadReader<R>> {
    match alt {
        Some((algo, hex)) => reader.with_uncompressed_digest(algo, &hex),
        None => Ok(reader),
    }
}
