//! Throwaway keys and certificates, made by the openssl command and never by our own code, so
//! that what a test checks against does not come from what it tests.
//!
//! Every function runs `openssl` in `dir`: names may be relative to it or absolute.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::run;

/// `openssl <args>` in `dir`; it must succeed.
pub fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").args(args).current_dir(dir));
}

/// `openssl req -newkey` arguments for a new RSA key of `bits`.
pub fn rsa(bits: u32) -> Vec<String> {
    vec!["-newkey".into(), format!("rsa:{bits}")]
}

/// `openssl req -newkey` arguments for a new EC key on `curve` ("P-256", "prime256v1", ...).
pub fn ec(curve: &str) -> Vec<String> {
    vec![
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        format!("ec_paramgen_curve:{curve}"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A new unencrypted key (`newkey`: [`rsa`] or [`ec`]) and a self-signed certificate for it,
/// valid `days` days; `serial` (hex) fixed when given, else openssl's random one.
pub fn self_signed(
    dir: &Path,
    key: &str,
    cert: &str,
    newkey: &[String],
    subj: &str,
    days: u32,
    serial: Option<&str>,
) {
    let days = days.to_string();
    let mut a = vec!["req", "-x509"];
    a.extend(strs(newkey));
    a.extend(["-nodes", "-subj", subj, "-days", &days]);
    a.extend(["-keyout", key, "-out", cert]);
    if let Some(serial) = serial {
        a.extend(["-set_serial", serial]);
    }
    openssl(dir, &a);
}

/// `dir/<name>.key.pem` and `dir/<name>.cert.pem`: a new RSA key of `bits` and its self-signed
/// certificate, subject `/CN=<cn>`, valid 2 days.
pub fn rsa_key_cert(dir: &Path, name: &str, bits: u32, cn: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    self_signed(
        dir,
        key.to_str().unwrap(),
        cert.to_str().unwrap(),
        &rsa(bits),
        &format!("/CN={cn}"),
        2,
        None,
    );
    (key, cert)
}

/// A new unencrypted key and a certificate request for it.
pub fn new_csr(dir: &Path, key: &str, csr: &str, newkey: &[String], subj: &str) {
    let mut a = vec!["req", "-new"];
    a.extend(strs(newkey));
    a.extend(["-nodes", "-keyout", key, "-out", csr, "-subj", subj]);
    openssl(dir, &a);
}

/// Who signs a certificate request in [`sign_csr`].
pub enum Issuer<'a> {
    /// The request's own key: a self-signed (CA) certificate.
    SelfKey(&'a str),
    /// A CA certificate and its key; the serial comes from `-CAcreateserial`.
    Ca { cert: &'a str, key: &'a str },
}

/// `openssl x509 -req`: the certificate for `csr`, valid `days` days, with the extensions of
/// section `ext.1` of the file `ext.0` when given.
pub fn sign_csr(
    dir: &Path,
    csr: &str,
    issuer: Issuer,
    days: u32,
    ext: Option<(&str, &str)>,
    out: &str,
) {
    let days = days.to_string();
    let mut a = vec!["x509", "-req", "-in", csr];
    match issuer {
        Issuer::SelfKey(key) => a.extend(["-key", key]),
        Issuer::Ca { cert, key } => a.extend(["-CA", cert, "-CAkey", key, "-CAcreateserial"]),
    }
    a.extend(["-days", &days]);
    if let Some((file, section)) = ext {
        a.extend(["-extfile", file, "-extensions", section]);
    }
    a.extend(["-out", out]);
    openssl(dir, &a);
}

/// A new RSA key of `bits` in the form `openssl genpkey` writes (PKCS#8 PEM).
pub fn genpkey_rsa(dir: &Path, key: &str, bits: u32) {
    let opt = format!("rsa_keygen_bits:{bits}");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &opt,
            "-out",
            key,
        ],
    );
}

/// A new EC key on `curve` in the form `openssl genpkey` writes (PKCS#8 PEM).
pub fn genpkey_ec(dir: &Path, key: &str, curve: &str) {
    let opt = format!("ec_paramgen_curve:{curve}");
    openssl(
        dir,
        &["genpkey", "-algorithm", "EC", "-pkeyopt", &opt, "-out", key],
    );
}

/// A self-signed certificate for an existing key, valid `days` days.
pub fn cert_for_key(dir: &Path, key: &str, cert: &str, subj: &str, days: u32) {
    let days = days.to_string();
    openssl(
        dir,
        &[
            "req", "-x509", "-new", "-key", key, "-subj", subj, "-days", &days, "-out", cert,
        ],
    );
}

/// `key` encrypted (PKCS#8, AES-256-CBC) into `out`; `passout` as openssl takes it
/// (`pass:...`, `file:...`).
pub fn encrypt_key(dir: &Path, key: &str, out: &str, passout: &str) {
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            key,
            "-passout",
            passout,
            "-out",
            out,
        ],
    );
}
