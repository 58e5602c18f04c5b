//! Signatures per second of a PKCS#11 key: through `LocalSigner` (one login, the session pool,
//! batches signed on every core, PKCS#7 built around each) against the token's own raw rate
//! (one session per thread calling C_Sign in a loop, nothing else). `scripts/bench-pkcs11` makes
//! a SoftHSM2 token and runs this; results in docs/benchmarks-serve.md.
//!
//! Usage: pkcs11-rate URI CERT SECONDS ROUNDS (the URI with module-path and pin-source).
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use fsverity::{FileDigest, HashAlgorithm};
use verity_signing::{LocalSigner, Pkcs11Uri, Signer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, uri, cert, secs, rounds] = &args[..] else {
        eprintln!("usage: pkcs11-rate URI CERT SECONDS ROUNDS");
        std::process::exit(2);
    };
    let secs: u64 = secs.parse().expect("SECONDS");
    let rounds: usize = rounds.parse().expect("ROUNDS");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let signer = LocalSigner::load(uri.as_ref(), Some(cert.as_ref()), None).expect("loading");
    let batch: Vec<FileDigest> = (0..1000u32)
        .map(|i| {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&i.to_le_bytes());
            FileDigest::new(HashAlgorithm::Sha256, &d).unwrap()
        })
        .collect();
    let ours_round = || {
        let start = Instant::now();
        let mut ours = 0usize;
        while start.elapsed() < Duration::from_secs(secs) {
            ours += signer.sign_digests(&batch).expect("signing").len();
        }
        ours as f64 / start.elapsed().as_secs_f64()
    };

    // The raw rate: the token's own C_Sign of a DigestInfo, one session per thread.
    let u = Pkcs11Uri::parse(uri).unwrap();
    let ctx = Pkcs11::new(u.module_path.as_ref().expect("module-path")).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == u.token.as_deref().unwrap())
        .expect("token");
    let pin = std::fs::read_to_string(u.pin_source.as_ref().expect("pin-source")).unwrap();
    let login = ctx.open_ro_session(slot).unwrap();
    let _ = login.login(UserType::User, Some(&pin.trim_end().to_string().into()));
    let raw_round = || {
        let start = Instant::now();
        let raw: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let ctx = ctx.clone();
                    let object = u.object.clone().unwrap();
                    scope.spawn(move || {
                        let s = ctx.open_ro_session(slot).unwrap();
                        let key = s
                            .find_objects(&[
                                Attribute::Class(ObjectClass::PRIVATE_KEY),
                                Attribute::Label(object.into_bytes()),
                            ])
                            .unwrap()[0];
                        let mut info = vec![
                            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
                            0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                        ];
                        info.extend([7u8; 32]);
                        let mut n = 0usize;
                        while start.elapsed() < Duration::from_secs(secs) {
                            s.sign(&Mechanism::RsaPkcs, key, &info).unwrap();
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        raw as f64 / start.elapsed().as_secs_f64()
    };
    // Alternating rounds, so that load from elsewhere on the machine falls on both alike.
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        ours.push(ours_round());
        raw.push(raw_round());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, r) = (median(&mut ours), median(&mut raw));
    println!("threads: {threads}, {rounds} alternating rounds of {secs} s, medians");
    println!("raw C_Sign (one session per thread): {r:.0} signatures/s  {raw:.0?}");
    println!(
        "LocalSigner over the session pool (PKCS#7 included): {o:.0} signatures/s  {ours:.0?}"
    );
    println!("ratio: {:.3}", o / r);
}
