//! A token that drops the login (an HSM restarted, a session timed out) does not stop a
//! long-running signer: it logs in again and finds its key again. Made to happen with a
//! SoftHSM2 token by logging the application out from another session. Its own test binary,
//! because SoftHSM2 reads its configuration from the environment once per process.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use fsverity::HashAlgorithm;
use verity_signing::SigningKey;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-deps installs softhsm2)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn signing_survives_a_lost_login() {
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} missing: install softhsm2"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tokens")).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.display()
        ),
    )
    .unwrap();
    // The only test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    run(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        "t",
        "--so-pin",
        "1234",
        "--pin",
        "5678",
    ]));
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/key.pem"
    ))
    .unwrap();
    let key_file = d.join("k.pem");
    std::fs::write(&key_file, &pem).unwrap();
    run(Command::new("softhsm2-util")
        .args(["--import"])
        .arg(&key_file)
        .args([
            "--token", "t", "--label", "k", "--id", "01", "--pin", "5678",
        ]));

    let uri = format!("pkcs11:token=t;object=k?module-path={MODULE}");
    let token = SigningKey::from_pkcs11(&uri, Some(b"5678"), 2).unwrap();
    let file_key = SigningKey::from_pem(&pem, None).unwrap();
    let msg = b"FSVerity formatted digest stand-in";
    let expected = file_key.sign(HashAlgorithm::Sha256, msg).unwrap();
    assert_eq!(token.sign(HashAlgorithm::Sha256, msg).unwrap(), expected);

    // Log the application out, as a token restart would, and check that it took effect: the
    // key is no longer usable without a new login.
    let ctx = Pkcs11::new(MODULE).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let s = ctx.open_ro_session(slot).unwrap();
    let key = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"k".to_vec()),
        ])
        .unwrap()[0];
    s.logout().unwrap();
    let info = [0u8; 51];
    assert!(
        s.sign(&Mechanism::RsaPkcs, key, &info).is_err(),
        "logout had no effect"
    );
    assert!(s
        .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap()
        .is_empty());

    // The signer logs in again by itself and signs the same bytes.
    assert_eq!(token.sign(HashAlgorithm::Sha256, msg).unwrap(), expected);
    assert_eq!(
        token.sign(HashAlgorithm::Sha512, msg).unwrap(),
        file_key.sign(HashAlgorithm::Sha512, msg).unwrap()
    );
}
