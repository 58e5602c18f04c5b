//! Keys that never leave a PKCS#11 token (an HSM, a smart card, SoftHSM), named by an RFC 7512
//! URI such as `pkcs11:token=fedora;object=verity-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/rpm-verity/pin`.
//!
//! The token only ever sees a hash: RSA signs a DigestInfo built here with `CKM_RSA_PKCS` (the
//! one RSA mechanism every token has), so a signature is byte-identical to the one the same key
//! makes as a PEM file; ECDSA signs the hash with `CKM_ECDSA` and its raw `r || s` is turned into
//! the DER `ECDSA-Sig-Value` PKCS#7 carries.
//!
//! Logging in is per application and token, and a session signs one thing at a time, so each
//! token gets one login and a pool of sessions that grows to the number of threads signing at
//! once: throughput is then the token's, not the login's or a lock's. The PIN is read from a
//! file (`pin-source=file:`, or the key passphrase file / `$RPM_VERITY_KEY_PASS`), never from
//! the command line; it is kept in memory (zeroed when dropped) to log in again, and find the key
//! again, when the token drops the login (an HSM restart), so a long-running service recovers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use der::Decode;
use fsverity::HashAlgorithm;

use crate::cert::EcCurve;

/// Environment variable naming the PKCS#11 module when the URI has no `module-path`.
pub const PKCS11_MODULE_ENV: &str = "RPM_VERITY_PKCS11_MODULE";

#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("invalid PKCS#11 URI: {0}")]
    BadUri(String),
    #[error(
        "no PKCS#11 module given: add module-path=/path/to/module.so to the URI's query, or set ${PKCS11_MODULE_ENV}"
    )]
    NoModule,
    #[error("cannot load PKCS#11 module {path}: {error}")]
    Module { path: PathBuf, error: String },
    #[error("no token matching {wanted} in PKCS#11 module {module} (tokens present: {present})")]
    TokenNotFound {
        wanted: String,
        module: PathBuf,
        present: String,
    },
    #[error("{count} tokens match {wanted}; add serial= to the URI to pick one")]
    AmbiguousToken { wanted: String, count: usize },
    #[error(
        "token {token:?} needs a PIN: add pin-source=file:PATH to the URI's query, give a PIN file (--key-pass-file, passphrase_file) or set $RPM_VERITY_KEY_PASS"
    )]
    NoPin { token: String },
    #[error("cannot read PIN file {path}: {error}")]
    PinFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("wrong PIN for token {token:?}")]
    WrongPin { token: String },
    #[error("the PIN of token {token:?} is locked (too many wrong PINs)")]
    PinLocked { token: String },
    #[error("no private key with {wanted} on token {token:?}")]
    ObjectNotFound { wanted: String, token: String },
    #[error("{count} private keys match {wanted} on token {token:?}; add id= to the URI")]
    AmbiguousObject {
        wanted: String,
        token: String,
        count: usize,
    },
    #[error("unsupported key on the token: {0} (only RSA and EC P-256/P-384 keys)")]
    Unsupported(String),
    #[error("PKCS#11 {what}: {error}")]
    Token { what: &'static str, error: String },
}

fn token_err(what: &'static str) -> impl Fn(CkError) -> Pkcs11Error {
    move |e| Pkcs11Error::Token {
        what,
        error: e.to_string(),
    }
}

/// The parts of an RFC 7512 URI this crate uses. `pin-value` is refused: a URI is typed on
/// command lines and copied into configs and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub module_path: Option<PathBuf>,
    pub pin_source: Option<PathBuf>,
}

/// Whether a `--key` or `key =` value names a token key rather than a file.
pub fn is_pkcs11_uri(s: &str) -> bool {
    s.starts_with("pkcs11:")
}

fn pct_decode(s: &str) -> Result<Vec<u8>, Pkcs11Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Pkcs11Error::BadUri(format!("bad percent-escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn pct_string(s: &str) -> Result<String, Pkcs11Error> {
    String::from_utf8(pct_decode(s)?)
        .map_err(|_| Pkcs11Error::BadUri(format!("{s:?} is not UTF-8 once decoded")))
}

impl Pkcs11Uri {
    pub fn parse(uri: &str) -> Result<Self, Pkcs11Error> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| Pkcs11Error::BadUri("does not start with \"pkcs11:\"".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut u = Self::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| Pkcs11Error::BadUri(format!("{attr:?} has no '='")))?;
            match k {
                "token" => u.token = Some(pct_string(v)?),
                "serial" => u.serial = Some(pct_string(v)?),
                "manufacturer" => u.manufacturer = Some(pct_string(v)?),
                "model" => u.model = Some(pct_string(v)?),
                "object" => u.object = Some(pct_string(v)?),
                "id" => u.id = Some(pct_decode(v)?),
                "type" if v == "private" => {}
                "type" => {
                    return Err(Pkcs11Error::BadUri(format!(
                        "type={v}: only private keys sign"
                    )))
                }
                // Attributes that only narrow down slots or libraries are not needed to find
                // a key, and ignoring them keeps URIs from other tools usable.
                _ => {}
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| Pkcs11Error::BadUri(format!("{attr:?} has no '='")))?;
            match k {
                "module-path" => u.module_path = Some(PathBuf::from(pct_string(v)?)),
                "pin-source" => {
                    let v = pct_string(v)?;
                    let file = v.strip_prefix("file:").unwrap_or(&v);
                    u.pin_source = Some(PathBuf::from(file));
                }
                "pin-value" => {
                    return Err(Pkcs11Error::BadUri(
                        "pin-value is refused: it would put the PIN on command lines and in logs; use pin-source=file:PATH".into(),
                    ))
                }
                _ => {}
            }
        }
        if u.object.is_none() && u.id.is_none() {
            return Err(Pkcs11Error::BadUri(
                "it names no key: give object=LABEL or id=%XX".into(),
            ));
        }
        Ok(u)
    }

    fn token_wanted(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("token", &self.token),
            ("serial", &self.serial),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v:?}"));
            }
        }
        if parts.is_empty() {
            "any token".into()
        } else {
            parts.join(" ")
        }
    }

    fn object_wanted(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = &self.object {
            parts.push(format!("object={o:?}"));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", hex::encode(id)));
        }
        parts.join(" ")
    }
}

/// One initialised module per path: PKCS#11 allows a library to be initialised once per process.
fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(m) = modules.get(path) {
        return Ok(m.clone());
    }
    let err = |error: String| Pkcs11Error::Module {
        path: path.to_path_buf(),
        error,
    };
    if !path.exists() {
        return Err(err("no such file".into()));
    }
    let m = Pkcs11::new(path).map_err(|e| err(e.to_string()))?;
    match m.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(err(format!("C_Initialize: {e}"))),
    }
    modules.insert(path.to_path_buf(), m.clone());
    Ok(m)
}

/// A logged-in token and its idle sessions.
struct TokenPool {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    idle: Mutex<Vec<Session>>,
    /// Idle sessions kept; more are closed when returned.
    keep: usize,
    /// To log in again when the token drops the login (an HSM restarted, a session timeout):
    /// a long-running service would otherwise fail until restarted. Zeroed when dropped.
    pin: cryptoki::types::RawAuthPin,
}

impl TokenPool {
    /// Drops the idle sessions (they may be dead) and logs in on a new one.
    fn relogin(&self) -> Result<Session, Pkcs11Error> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let session = self
            .ctx
            .open_ro_session(self.slot)
            .map_err(token_err("opening a session"))?;
        login(&session, &self.pin, &self.label)?;
        Ok(session)
    }

    fn session(&self) -> Result<Session, Pkcs11Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(s) => Ok(s),
            // The login is the application's, so a new session is logged in already.
            None => self
                .ctx
                .open_ro_session(self.slot)
                .map_err(token_err("opening a session")),
        }
    }

    fn put_back(&self, s: Session) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.keep {
            idle.push(s);
        }
    }
}

/// Logged-in tokens by module and slot.
type Pools = Mutex<HashMap<(PathBuf, u64), Arc<TokenPool>>>;

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(Default::default)
}

fn find_slot(ctx: &Pkcs11, uri: &Pkcs11Uri, module: &Path) -> Result<(Slot, String), Pkcs11Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(token_err("listing slots"))?;
    let mut present = Vec::new();
    let mut found = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_string();
        let fits = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| w.trim_end() == have.trim_end())
        };
        if fits(&uri.token, &label)
            && fits(&uri.serial, info.serial_number())
            && fits(&uri.manufacturer, info.manufacturer_id())
            && fits(&uri.model, info.model())
        {
            found.push((slot, label.clone()));
        }
        present.push(format!("{label:?}"));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Pkcs11Error::TokenNotFound {
            wanted: uri.token_wanted(),
            module: module.to_path_buf(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        }),
        count => Err(Pkcs11Error::AmbiguousToken {
            wanted: uri.token_wanted(),
            count,
        }),
    }
}

fn read_pin(path: &Path) -> Result<Vec<u8>, Pkcs11Error> {
    let data = std::fs::read(path).map_err(|error| Pkcs11Error::PinFile {
        path: path.to_path_buf(),
        error,
    })?;
    let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// The pool of the token `uri` names, logging in when this process has not yet.
fn token_pool(
    uri: &Pkcs11Uri,
    fallback_pin: Option<&[u8]>,
    sessions: usize,
) -> Result<Arc<TokenPool>, Pkcs11Error> {
    let module_path = match &uri.module_path {
        Some(p) => p.clone(),
        None => std::env::var_os(PKCS11_MODULE_ENV)
            .map(PathBuf::from)
            .ok_or(Pkcs11Error::NoModule)?,
    };
    let ctx = module(&module_path)?;
    let (slot, label) = find_slot(&ctx, uri, &module_path)?;
    let mut pools = pools().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.get(&(module_path.clone(), slot.id())) {
        return Ok(p.clone());
    }
    let pin = match &uri.pin_source {
        Some(path) => read_pin(path)?,
        None => fallback_pin
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Pkcs11Error::NoPin {
                token: label.clone(),
            })?,
    };
    let session = ctx
        .open_ro_session(slot)
        .map_err(token_err("opening a session"))?;
    let pin = cryptoki::types::RawAuthPin::new(Box::new(pin));
    login(&session, &pin, &label)?;
    let pool = Arc::new(TokenPool {
        ctx,
        slot,
        label,
        idle: Mutex::new(vec![session]),
        keep: sessions.max(1),
        pin,
    });
    pools.insert((module_path, slot.id()), pool.clone());
    Ok(pool)
}

fn login(
    session: &Session,
    pin: &cryptoki::types::RawAuthPin,
    label: &str,
) -> Result<(), Pkcs11Error> {
    match session.login_with_raw(UserType::User, pin) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Pkcs11Error::WrongPin {
            token: label.to_string(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            token: label.to_string(),
        }),
        Err(e) => Err(token_err("login")(e)),
    }
}

/// Failures after which logging in again and finding the key again may help.
fn lost_login(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::UserNotLoggedIn
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKeyKind {
    /// Modulus length in bytes.
    Rsa(usize),
    Ec(EcCurve),
}

/// A private key on a token.
pub struct Pkcs11Key {
    pool: Arc<TokenPool>,
    /// Found again after a new login: a token may number its objects anew.
    handle: Mutex<ObjectHandle>,
    uri: Pkcs11Uri,
    pub(crate) kind: TokenKeyKind,
    /// `RSAPublicKey` DER (RSA) or the EC point, when the token shows it.
    pub(crate) public: Vec<u8>,
    /// The URI without its query, for messages.
    name: String,
}

impl std::fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?} on token {:?}",
            self.name, self.kind, self.pool.label
        )
    }
}

const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

impl Pkcs11Key {
    /// Finds the key `uri` names, logging in with the URI's `pin-source`, else `fallback_pin`.
    /// `sessions` is how many threads will sign at once.
    pub fn open(
        uri_text: &str,
        fallback_pin: Option<&[u8]>,
        sessions: usize,
    ) -> Result<Self, Pkcs11Error> {
        let uri = Pkcs11Uri::parse(uri_text)?;
        let pool = token_pool(&uri, fallback_pin, sessions)?;
        let session = pool.session()?;
        let found = Self::find(&session, &uri, &pool);
        let result = found.and_then(|handle| {
            let (kind, public) = key_kind(&session, handle)?;
            Ok(Self {
                pool: pool.clone(),
                handle: Mutex::new(handle),
                uri: uri.clone(),
                kind,
                public,
                name: uri_text.split('?').next().unwrap_or(uri_text).to_string(),
            })
        });
        pool.put_back(session);
        result
    }

    fn find(
        session: &Session,
        uri: &Pkcs11Uri,
        pool: &TokenPool,
    ) -> Result<ObjectHandle, Pkcs11Error> {
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(o) = &uri.object {
            template.push(Attribute::Label(o.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = session
            .find_objects(&template)
            .map_err(token_err("finding the key"))?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Pkcs11Error::ObjectNotFound {
                wanted: uri.object_wanted(),
                token: pool.label.clone(),
            }),
            more => Err(Pkcs11Error::AmbiguousObject {
                wanted: uri.object_wanted(),
                token: pool.label.clone(),
                count: more.len(),
            }),
        }
    }

    /// The raw signature of `message` hashed with `hash`, as [`crate::SigningKey::sign`] makes it.
    pub fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let alg = match hash {
            HashAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
            HashAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
        };
        let digest = aws_lc_rs::digest::digest(alg, message);
        let (mechanism, input) = match self.kind {
            TokenKeyKind::Rsa(_) => (Mechanism::RsaPkcs, digest_info(hash, digest.as_ref())),
            TokenKeyKind::Ec(curve) => {
                // ECDSA uses the leftmost bits of the hash up to the order's size (both curves
                // here have whole-byte orders); tokens differ in whether they truncate.
                let n = if curve == EcCurve::P256 { 32 } else { 48 };
                let h = digest.as_ref();
                (Mechanism::Ecdsa, h[..n.min(h.len())].to_vec())
            }
        };
        let raw = match self.sign_on_token(&mechanism, &input)? {
            Ok(raw) => raw,
            Err(e) if lost_login(&e) => {
                self.recover()?;
                self.sign_on_token(&mechanism, &input)?
                    .map_err(token_err("signing"))?
            }
            Err(e) => return Err(token_err("signing")(e)),
        };
        match self.kind {
            TokenKeyKind::Rsa(_) => Ok(raw),
            TokenKeyKind::Ec(curve) => ecdsa_der(curve, &raw),
        }
    }
}

impl Pkcs11Key {
    /// One C_Sign on a pooled session. The inner error is the token's, for the caller to judge.
    fn sign_on_token(
        &self,
        mechanism: &Mechanism,
        input: &[u8],
    ) -> Result<Result<Vec<u8>, CkError>, Pkcs11Error> {
        let session = self.pool.session()?;
        let handle = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
        let raw = session.sign(mechanism, handle, input);
        // A session whose call failed may be in a bad state: drop it rather than reuse it.
        if raw.is_ok() {
            self.pool.put_back(session);
        }
        Ok(raw)
    }

    /// Logs in again and finds the key again.
    fn recover(&self) -> Result<(), Pkcs11Error> {
        let session = self.pool.relogin()?;
        let found = Self::find(&session, &self.uri, &self.pool);
        if let Ok(h) = &found {
            *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = *h;
            self.pool.put_back(session);
        }
        found.map(|_| ())
    }
}

/// PKCS#1 v1.5 DigestInfo: the DER prefix for the hash algorithm, then the hash.
fn digest_info(hash: HashAlgorithm, digest: &[u8]) -> Vec<u8> {
    const SHA256: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    const SHA512: [u8; 19] = [
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
        0x05, 0x00, 0x04, 0x40,
    ];
    let prefix = match hash {
        HashAlgorithm::Sha256 => &SHA256,
        HashAlgorithm::Sha512 => &SHA512,
    };
    [&prefix[..], digest].concat()
}

/// PKCS#11 gives ECDSA signatures as `r || s`; PKCS#7 carries a DER `ECDSA-Sig-Value`.
fn ecdsa_der(curve: EcCurve, raw: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
    let bad = |e: p256::ecdsa::Error| Pkcs11Error::Token {
        what: "ECDSA signature",
        error: format!(
            "the token returned {} bytes that are not r || s: {e}",
            raw.len()
        ),
    };
    Ok(match curve {
        EcCurve::P256 => p256::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec(),
        _ => p384::ecdsa::Signature::from_slice(raw)
            .map_err(bad)?
            .to_der()
            .as_bytes()
            .to_vec(),
    })
}

/// The key's type and size, and its public half when the token shows it.
fn key_kind(session: &Session, key: ObjectHandle) -> Result<(TokenKeyKind, Vec<u8>), Pkcs11Error> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcParams,
                AttributeType::Id,
            ],
        )
        .map_err(token_err("reading the key's attributes"))?;
    let mut key_type = None;
    let (mut modulus, mut exponent, mut params, mut id) = (None, None, None, None);
    for a in attrs {
        match a {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::Id(i) => id = Some(i),
            _ => {}
        }
    }
    match key_type {
        Some(t) if t == KeyType::RSA => {
            let (Some(n), Some(e)) = (modulus, exponent) else {
                return Err(Pkcs11Error::Unsupported(
                    "RSA key without a readable modulus".into(),
                ));
            };
            let n = strip_zeros(&n);
            Ok((
                TokenKeyKind::Rsa(n.len()),
                rsa_public_der(n, strip_zeros(&e)),
            ))
        }
        Some(t) if t == KeyType::EC => {
            let oid = params
                .as_deref()
                .and_then(|p| der::asn1::ObjectIdentifier::from_der(p).ok())
                .map(|o| o.to_string());
            let curve = match oid.as_deref() {
                Some(OID_P256) => EcCurve::P256,
                Some(OID_P384) => EcCurve::P384,
                other => {
                    return Err(Pkcs11Error::Unsupported(format!(
                        "EC curve {}",
                        other.unwrap_or("(not a named curve)")
                    )))
                }
            };
            Ok((TokenKeyKind::Ec(curve), ec_point(session, id)))
        }
        Some(t) => Err(Pkcs11Error::Unsupported(format!("key type {t}"))),
        None => Err(Pkcs11Error::Unsupported("key without CKA_KEY_TYPE".into())),
    }
}

/// The EC point of the public key object with the same `CKA_ID`, if there is one: private EC
/// key objects do not carry it.
fn ec_point(session: &Session, id: Option<Vec<u8>>) -> Vec<u8> {
    let Some(id) = id else { return Vec::new() };
    let template = [Attribute::Class(ObjectClass::PUBLIC_KEY), Attribute::Id(id)];
    let Ok(found) = session.find_objects(&template) else {
        return Vec::new();
    };
    let Some(&public) = found.first() else {
        return Vec::new();
    };
    let Ok(attrs) = session.get_attributes(public, &[AttributeType::EcPoint]) else {
        return Vec::new();
    };
    attrs
        .into_iter()
        .find_map(|a| match a {
            // CKA_EC_POINT is the point wrapped in a DER OCTET STRING.
            Attribute::EcPoint(p) => der::asn1::OctetString::from_der(&p)
                .map(|o| o.as_bytes().to_vec())
                .ok(),
            _ => None,
        })
        .unwrap_or_default()
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` as certificates hold it.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    use der::Encode;
    let int = |b: &[u8]| der::asn1::UintRef::new(b).and_then(|u| u.to_der());
    match (int(n), int(e)) {
        (Ok(n), Ok(e)) => {
            let body = [n, e].concat();
            let mut out = vec![0x30];
            let len = body.len();
            if len < 0x80 {
                out.push(len as u8);
            } else if len < 0x100 {
                out.extend([0x81, len as u8]);
            } else {
                out.extend([0x82, (len >> 8) as u8, len as u8]);
            }
            out.extend(body);
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_attributes_and_query() {
        let u = Pkcs11Uri::parse(
            "pkcs11:token=My%20Token;object=k1;id=%01%ab;type=private?module-path=/usr/lib/x.so&pin-source=file:/etc/pin",
        )
        .unwrap();
        assert_eq!(u.token.as_deref(), Some("My Token"));
        assert_eq!(u.object.as_deref(), Some("k1"));
        assert_eq!(u.id.as_deref(), Some(&[0x01, 0xab][..]));
        assert_eq!(u.module_path.as_deref(), Some(Path::new("/usr/lib/x.so")));
        assert_eq!(u.pin_source.as_deref(), Some(Path::new("/etc/pin")));
        for (bad, says) in [
            (
                "pkcs11:token=t;object=k?pin-value=1234",
                "pin-value is refused",
            ),
            ("pkcs11:token=t", "names no key"),
            ("pkcs11:object=%zz", "percent-escape"),
            ("pkcs11:object", "has no '='"),
            ("pkcs11:object=k;type=public", "only private keys"),
            ("file:k.pem", "pkcs11:"),
        ] {
            let e = Pkcs11Uri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn digest_info_lengths_are_its_der_lengths() {
        let msg = b"fs-verity formatted digest";
        for (hash, alg) in [
            (HashAlgorithm::Sha256, &aws_lc_rs::digest::SHA256),
            (HashAlgorithm::Sha512, &aws_lc_rs::digest::SHA512),
        ] {
            let d = aws_lc_rs::digest::digest(alg, msg);
            let info = digest_info(hash, d.as_ref());
            assert_eq!(info[1] as usize, info.len() - 2);
            assert_eq!(info[18] as usize, d.as_ref().len());
            assert!(info.ends_with(d.as_ref()));
        }
    }

    #[test]
    fn rsa_public_der_matches_the_certificate_encoding() {
        let key = crate::SigningKey::from_pem(include_bytes!("../../../tests/data/key.pem"), None)
            .unwrap();
        let pk = aws_lc_rs::rsa::PublicKey::from_der(key.public_key_der()).unwrap();
        let comps = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(&pk);
        assert_eq!(rsa_public_der(&comps.n, &comps.e), key.public_key_der());
    }
}
