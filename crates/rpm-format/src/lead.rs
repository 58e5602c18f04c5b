//! The 96-byte lead. Obsolete as a source of information, but rpm still checks it and rpm
//! 4.18's rewrite mode regenerates it, so we parse and write it exactly.

use crate::error::{Error, Result};
use crate::header::Header;
use crate::reader::Reader;
use crate::tags;

pub const LEAD_SIZE: usize = 96;
pub const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
/// "Header-style" signature: the only type rpm ≥ 4 accepts.
pub const SIGTYPE_HEADERSIG: u16 = 5;
pub const TYPE_BINARY: u16 = 0;
pub const TYPE_SOURCE: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lead {
    pub major: u8,
    pub minor: u8,
    pub package_type: u16,
    pub archnum: u16,
    /// 66 bytes, NUL-padded.
    pub name: [u8; 66],
    pub osnum: u16,
    pub signature_type: u16,
    pub reserved: [u8; 16],
}

impl Lead {
    /// Accepts what rpm's `rpmLeadCheck` accepts: magic, sigtype 5, major 3 or 4.
    pub fn parse(b: &[u8; LEAD_SIZE]) -> Result<Lead> {
        let mut r = Reader::new(b);
        if r.array::<4>() != Some(LEAD_MAGIC) {
            return Err(Error::NotRpm("bad lead magic".into()));
        }
        // The array type guarantees the length, so this error cannot occur; it exists so that
        // a change of the layout cannot turn into a panic.
        let lead = Lead::fields(&mut r)
            .ok_or_else(|| Error::BadLead(format!("lead is not {LEAD_SIZE} bytes")))?;
        if lead.signature_type != SIGTYPE_HEADERSIG {
            return Err(Error::BadLead(format!(
                "unsupported signature type {}",
                lead.signature_type
            )));
        }
        if !(3..=4).contains(&lead.major) {
            return Err(Error::BadLead(format!(
                "unsupported package version {}",
                lead.major
            )));
        }
        Ok(lead)
    }

    /// Everything after the magic, which must fill the rest of the lead exactly.
    fn fields(r: &mut Reader) -> Option<Lead> {
        let lead = Lead {
            major: r.u8()?,
            minor: r.u8()?,
            package_type: r.be_u16()?,
            archnum: r.be_u16()?,
            name: r.array()?,
            osnum: r.be_u16()?,
            signature_type: r.be_u16()?,
            reserved: r.array()?,
        };
        r.expect_end()?;
        Some(lead)
    }

    pub fn to_bytes(&self) -> [u8; LEAD_SIZE] {
        let mut b = [0u8; LEAD_SIZE];
        b[..4].copy_from_slice(&LEAD_MAGIC);
        b[4] = self.major;
        b[5] = self.minor;
        b[6..8].copy_from_slice(&self.package_type.to_be_bytes());
        b[8..10].copy_from_slice(&self.archnum.to_be_bytes());
        b[10..76].copy_from_slice(&self.name);
        b[76..78].copy_from_slice(&self.osnum.to_be_bytes());
        b[78..80].copy_from_slice(&self.signature_type.to_be_bytes());
        b[80..96].copy_from_slice(&self.reserved);
        b
    }

    /// The name as text, up to the first NUL.
    pub fn name(&self) -> String {
        let n = self.name.iter().position(|&c| c == 0).unwrap_or(66);
        String::from_utf8_lossy(&self.name[..n]).into_owned()
    }

    /// What rpm 4.18's `rpmLeadFromHeader` writes in rewrite mode: NEVR of the main header,
    /// source/binary from the absence/presence of SOURCERPM, and the *host's* arch and OS
    /// numbers (not the package's).
    pub fn from_header(main: &Header, archnum: u16, osnum: u16) -> Result<Lead> {
        let nevr = nevr(main)?;
        let mut name = [0u8; 66];
        let n = nevr.len().min(65);
        name[..n].copy_from_slice(&nevr[..n]);
        Ok(Lead {
            major: 3,
            minor: 0,
            package_type: if main.contains(tags::SOURCERPM) {
                TYPE_BINARY
            } else {
                TYPE_SOURCE
            },
            archnum,
            name,
            osnum,
            signature_type: SIGTYPE_HEADERSIG,
            reserved: [0; 16],
        })
    }

    /// Like [`Lead::from_header`] with this machine's numbers, as the rpmsign run here would.
    pub fn from_header_for_host(main: &Header) -> Result<Lead> {
        Lead::from_header(main, host_archnum(), host_osnum())
    }
}

/// `name-[epoch:]version-release` as rpm's NEVR extension formats it.
pub fn nevr(main: &Header) -> Result<Vec<u8>> {
    let name = main
        .get_string_bytes(tags::NAME)?
        .ok_or(Error::MissingTag("NAME"))?;
    let version = main
        .get_string_bytes(tags::VERSION)?
        .ok_or(Error::MissingTag("VERSION"))?;
    let release = main
        .get_string_bytes(tags::RELEASE)?
        .ok_or(Error::MissingTag("RELEASE"))?;
    let mut out = Vec::new();
    out.extend_from_slice(name);
    out.push(b'-');
    if let Some(epoch) = main.get_u32(tags::EPOCH)? {
        out.extend_from_slice(epoch.to_string().as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(version);
    out.push(b'-');
    out.extend_from_slice(release);
    Ok(out)
}

/// rpmrc `arch_canon` number of the build target this binary runs on.
pub fn host_archnum() -> u16 {
    if cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        1
    } else if cfg!(target_arch = "aarch64") {
        19
    } else if cfg!(target_arch = "powerpc64") {
        16
    } else if cfg!(target_arch = "s390x") {
        15
    } else if cfg!(target_arch = "riscv64") {
        22
    } else {
        0
    }
}

/// rpmrc `os_canon` number: Linux = 1.
pub fn host_osnum() -> u16 {
    if cfg!(target_os = "linux") {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{HeaderBuilder, HeaderKind, OwnedEntry, TAG_HEADERIMMUTABLE};

    fn main_header(epoch: Option<u32>, source: bool) -> Header {
        let mut b = HeaderBuilder::new();
        b.put(OwnedEntry::string(tags::NAME, "vt"));
        b.put(OwnedEntry::string(tags::VERSION, "1.0"));
        b.put(OwnedEntry::string(tags::RELEASE, "1"));
        if let Some(e) = epoch {
            b.put(OwnedEntry::u32s(tags::EPOCH, &[e]));
        }
        if !source {
            b.put(OwnedEntry::string(tags::SOURCERPM, "vt-1.0-1.src.rpm"));
        }
        Header::parse(&b.serialize(TAG_HEADERIMMUTABLE), HeaderKind::Main)
            .unwrap()
            .0
    }

    #[test]
    fn regenerate_and_round_trip() {
        let l = Lead::from_header(&main_header(None, false), 1, 1).unwrap();
        assert_eq!(l.name(), "vt-1.0-1");
        assert_eq!(l.package_type, TYPE_BINARY);
        let b = l.to_bytes();
        assert_eq!(&b[..8], &[0xed, 0xab, 0xee, 0xdb, 3, 0, 0, 0]);
        assert_eq!(&b[8..10], &[0, 1]);
        assert_eq!(&b[76..80], &[0, 1, 0, 5]);
        assert_eq!(Lead::parse(&b).unwrap(), l);
        let l = Lead::from_header(&main_header(Some(3), true), 19, 1).unwrap();
        assert_eq!(l.name(), "vt-3:1.0-1");
        assert_eq!(l.package_type, TYPE_SOURCE);
    }

    #[test]
    fn rejects() {
        let good = Lead::from_header(&main_header(None, false), 1, 1)
            .unwrap()
            .to_bytes();
        let mut b = good;
        b[0] = 0;
        assert!(matches!(Lead::parse(&b), Err(Error::NotRpm(_))));
        let mut b = good;
        b[79] = 1;
        assert!(Lead::parse(&b).is_err());
        let mut b = good;
        b[4] = 5;
        assert!(Lead::parse(&b).is_err());
        b[4] = 4;
        assert!(Lead::parse(&b).is_ok());
    }
}
