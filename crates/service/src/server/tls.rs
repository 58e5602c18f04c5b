//! TLS for the service: the server configuration, and client certificates checked after the
//! handshake rather than during it (see [`DeferredChainCheck`]).
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;

use super::config::Config;
use super::keys;
use super::setup_error::TlsError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsError::ReadCertificates {
            path: path.to_path_buf(),
            source,
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::ParseCertificates {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub type TlsSetup = (
    Arc<rustls::ServerConfig>,
    Option<Arc<dyn ClientCertVerifier>>,
);

pub fn tls_config(config: &Config) -> Result<TlsSetup, TlsError> {
    keys::check_private_file(&config.tls_key, "TLS key file")?;
    let chain = load_certs(&config.tls_cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&config.tls_key).map_err(|source| TlsError::ReadKey {
            path: config.tls_key.clone(),
            source,
        })?;
    let provider = provider();
    let chain_check = match &config.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in load_certs(ca)? {
                roots.add(c).map_err(|source| TlsError::ClientCa {
                    path: ca.clone(),
                    source,
                })?;
            }
            // Unauthenticated TLS stays allowed so token clients can connect; the API refuses
            // requests that carry neither a verified certificate nor a valid token.
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|source| TlsError::ClientVerifier {
                    path: ca.clone(),
                    source,
                })?;
            Some(v)
        }
        None => None,
    };
    let verifier: Arc<dyn ClientCertVerifier> = match &chain_check {
        Some(v) => Arc::new(DeferredChainCheck { inner: v.clone() }),
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::ProtocolVersions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::CertificateAndKey {
            cert: config.tls_cert.clone(),
            key: config.tls_key.clone(),
            source,
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), chain_check))
}

/// Lets a client certificate with a bad chain through the handshake, so that its request can be
/// refused with an HTTP 401 that says why, and logged like any refusal. Over TLS 1.3 a
/// handshake-time refusal reaches the client only as a broken pipe on its first write. Proof of
/// possession (the CertificateVerify signature) is still checked here; the chain is checked by
/// the real verifier right after the handshake, and a connection whose chain fails carries that
/// error instead of an identity.
#[derive(Debug)]
struct DeferredChainCheck {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredChainCheck {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The identity a verified client certificate gives, or why the certificate was refused.
pub fn client_identity(
    verifier: Option<&Arc<dyn ClientCertVerifier>>,
    certs: Option<&[CertificateDer<'static>]>,
) -> (Option<String>, Option<String>) {
    match (verifier, certs) {
        (Some(v), Some([ee, rest @ ..])) => match v.verify_client_cert(ee, rest, UnixTime::now()) {
            Ok(_) => match verity_signing::subject_common_name(ee) {
                Some(cn) => (Some(cn), None),
                None => (
                    None,
                    Some("client certificate has no subject CN".to_string()),
                ),
            },
            Err(e) => (None, Some(format!("client certificate refused: {e}"))),
        },
        _ => (None, None),
    }
}
