//! Tag numbers used by this crate (rpm `include/rpm/rpmtag.h`).

// Signature header (SIG_BASE = 256 for the 2xx ones).
pub const SIG_DSA: u32 = 267;
pub const SIG_RSA: u32 = 268;
pub const SIG_SHA1: u32 = 269;
pub const SIG_LONGSIZE: u32 = 270;
pub const SIG_LONGARCHIVESIZE: u32 = 271;
/// 273, not 272: the enum value is SIG_BASE + 17.
pub const SIG_SHA256: u32 = 273;
pub const SIG_FILESIGNATURES: u32 = 274;
pub const SIG_FILESIGNATURELENGTH: u32 = 275;
pub const SIG_VERITYSIGNATURES: u32 = 276;
pub const SIG_VERITYSIGNATUREALGO: u32 = 277;
pub const SIG_SIZE: u32 = 1000;
pub const SIG_PGP: u32 = 1002;
pub const SIG_MD5: u32 = 1004;
pub const SIG_GPG: u32 = 1005;
pub const SIG_PAYLOADSIZE: u32 = 1007;
pub const SIG_RESERVEDSPACE: u32 = 1008;

// Main header.
pub const NAME: u32 = 1000;
pub const VERSION: u32 = 1001;
pub const RELEASE: u32 = 1002;
pub const EPOCH: u32 = 1003;
pub const ARCH: u32 = 1022;
pub const OLDFILENAMES: u32 = 1027;
pub const FILESIZES: u32 = 1028;
pub const FILEMODES: u32 = 1030;
pub const FILERDEVS: u32 = 1033;
pub const FILEMTIMES: u32 = 1034;
pub const FILEDIGESTS: u32 = 1035;
pub const FILELINKTOS: u32 = 1036;
pub const FILEFLAGS: u32 = 1037;
pub const SOURCERPM: u32 = 1044;
pub const FILEDEVICES: u32 = 1095;
pub const FILEINODES: u32 = 1096;
pub const DIRINDEXES: u32 = 1116;
pub const BASENAMES: u32 = 1117;
pub const DIRNAMES: u32 = 1118;
pub const PAYLOADFORMAT: u32 = 1124;
pub const PAYLOADCOMPRESSOR: u32 = 1125;
pub const PAYLOADFLAGS: u32 = 1126;
pub const LONGFILESIZES: u32 = 5008;
pub const FILEDIGESTALGO: u32 = 5011;
pub const PAYLOADDIGEST: u32 = 5092;
pub const PAYLOADDIGESTALGO: u32 = 5093;
pub const PAYLOADDIGESTALT: u32 = 5097;

// File flags (FILEFLAGS).
pub const FILE_CONFIG: u32 = 1;
pub const FILE_DOC: u32 = 2;
pub const FILE_MISSINGOK: u32 = 8;
pub const FILE_NOREPLACE: u32 = 16;
pub const FILE_GHOST: u32 = 64;
pub const FILE_LICENSE: u32 = 128;
pub const FILE_README: u32 = 256;
pub const FILE_ARTIFACT: u32 = 4096;
