//! The signing threads: one first-in, first-out queue of single digests from every request.
//!
//! Why not a rayon pool with `par_iter` per request (what this replaced): a rayon thread that
//! waits in `join` for the half of a batch another thread stole runs other work meanwhile,
//! including the next request, and cannot return to the first request before that one is
//! done. Under load requests got buried under later ones, and the open-loop tail grew in bursts
//! of 60-400 ms (docs/benchmarks-serve.md). Here a thread never waits for another: it takes the
//! oldest digest queued, signs it, and answers the request whose last digest that was. A
//! request alone still has every thread on it; requests that queue are served in order.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use fsverity::FileDigest;
use verity_signing::{DistinctDigests, Signer, SignerError};

/// Threads signing queued digests in order.
pub struct SigningThreads {
    queue: Mutex<Sender<Task>>,
}

/// One digest of a batch.
struct Task {
    batch: Arc<Batch>,
    index: usize,
}

/// A request's distinct digests, their signatures as they are made, and who waits for them.
struct Batch {
    signer: Arc<dyn Signer>,
    digests: Vec<FileDigest>,
    signatures: Mutex<Vec<Vec<u8>>>,
    left: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<SignerError>>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Result<Vec<Vec<u8>>, SignerError>>>>,
}

impl SigningThreads {
    pub fn start(threads: usize) -> std::io::Result<SigningThreads> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            thread::Builder::new()
                .name(format!("sign-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(SigningThreads {
            queue: Mutex::new(tx),
        })
    }

    /// Signs `digests` (each distinct one once) behind everything queued before them.
    pub async fn sign(
        &self,
        signer: Arc<dyn Signer>,
        digests: &[FileDigest],
    ) -> Result<Vec<Vec<u8>>, SignerError> {
        let distinct = DistinctDigests::new(digests);
        let unique: Vec<FileDigest> = distinct.unique.iter().map(|d| (*d).clone()).collect();
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let n = unique.len();
        let batch = Arc::new(Batch {
            signer,
            digests: unique,
            signatures: Mutex::new(vec![Vec::new(); n]),
            left: AtomicUsize::new(n),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            done: Mutex::new(Some(tx)),
        });
        {
            let queue = self
                .queue
                .lock()
                .map_err(|_| SignerError::Crypto("signing queue poisoned".into()))?;
            for index in 0..n {
                let task = Task {
                    batch: Arc::clone(&batch),
                    index,
                };
                if queue.send(task).is_err() {
                    return Err(SignerError::Crypto("signing threads stopped".into()));
                }
            }
        }
        drop(batch);
        let per_unique = rx
            .await
            .map_err(|_| SignerError::Crypto("signing threads stopped".into()))??;
        distinct
            .spread(&per_unique)
            .ok_or_else(|| SignerError::Crypto("a signature went missing".into()))
    }
}

fn work(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(t) => t,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let b = &task.batch;
        // Once one digest of a batch failed, the rest of it is not worth signing.
        if !b.failed.load(Ordering::Relaxed) {
            let signed = catch_unwind(AssertUnwindSafe(|| {
                b.signer.sign_one(&b.digests[task.index])
            }))
            .unwrap_or_else(|_| Err(SignerError::Crypto("the signer panicked".into())));
            match signed {
                Ok(sig) => {
                    if let Ok(mut s) = b.signatures.lock() {
                        s[task.index] = sig;
                    }
                }
                Err(e) => {
                    b.failed.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = b.error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            }
        }
        if b.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            finish(b);
        }
    }
}

/// The last digest of a batch is done: hand the signatures (or the first error) over.
fn finish(b: &Batch) {
    let outcome = match b.error.lock().ok().and_then(|mut e| e.take()) {
        Some(e) => Err(e),
        None if b.failed.load(Ordering::Relaxed) => {
            Err(SignerError::Crypto("signing failed".into()))
        }
        None => Ok(b
            .signatures
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()),
    };
    if let Some(tx) = b.done.lock().ok().and_then(|mut d| d.take()) {
        // The request may have been dropped (client gone): nobody to tell.
        let _ = tx.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fsverity::HashAlgorithm;
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    /// Signs by echoing the digest, slowly, and records the order it was asked in.
    struct Echo {
        order: Mutex<Vec<u8>>,
        fail_on: Option<u8>,
        calls: AtomicU32,
    }

    impl Signer for Echo {
        fn sign_digests(&self, digests: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError> {
            digests.iter().map(|d| self.sign_one(d)).collect()
        }
        fn sign_one(&self, d: &FileDigest) -> Result<Vec<u8>, SignerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let first = d.as_bytes()[0];
            std::thread::sleep(Duration::from_millis(2));
            self.order.lock().unwrap().push(first);
            if Some(first) == self.fail_on {
                return Err(SignerError::Crypto(format!("refused {first}")));
            }
            Ok(d.as_bytes().to_vec())
        }
        fn certificate_der(&self) -> &[u8] {
            &[]
        }
    }

    fn digest(first: u8, n: u8) -> FileDigest {
        let mut b = [n; 32];
        b[0] = first;
        FileDigest::new(HashAlgorithm::Sha256, &b).unwrap()
    }

    fn echo(fail_on: Option<u8>) -> Arc<Echo> {
        Arc::new(Echo {
            order: Mutex::new(Vec::new()),
            fail_on,
            calls: AtomicU32::new(0),
        })
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn signatures_in_request_order_with_duplicates_signed_once() {
        let threads = SigningThreads::start(2).unwrap();
        let signer = echo(None);
        let ds = vec![digest(1, 1), digest(2, 2), digest(1, 1), digest(3, 3)];
        let sigs = rt().block_on(threads.sign(signer.clone(), &ds)).unwrap();
        let want: Vec<Vec<u8>> = ds.iter().map(|d| d.as_bytes().to_vec()).collect();
        assert_eq!(sigs, want);
        assert_eq!(signer.calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn an_earlier_request_is_signed_before_a_later_one_starts() {
        let threads = Arc::new(SigningThreads::start(2).unwrap());
        let signer = echo(None);
        let a: Vec<FileDigest> = (0..20).map(|i| digest(10, i)).collect();
        let b: Vec<FileDigest> = (0..20).map(|i| digest(20, i)).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (t1, s1, t2, s2) = (
                threads.clone(),
                signer.clone(),
                threads.clone(),
                signer.clone(),
            );
            let first = tokio::spawn(async move { t1.sign(s1, &a).await });
            // The first request is queued whole before the second arrives.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let second = tokio::spawn(async move { t2.sign(s2, &b).await });
            first.await.unwrap().unwrap();
            second.await.unwrap().unwrap();
        });
        let order = signer.order.lock().unwrap().clone();
        let last_a = order.iter().rposition(|&x| x == 10).unwrap();
        let first_b = order.iter().position(|&x| x == 20).unwrap();
        // With two threads, at most one digest of the second request can start while the
        // last of the first is being signed.
        assert!(first_b + 1 >= last_a, "interleaved: {order:?}");
    }

    #[test]
    fn a_failure_fails_the_request_and_the_threads_go_on() {
        let threads = SigningThreads::start(2).unwrap();
        let bad = echo(Some(7));
        let ds: Vec<FileDigest> = (5..10).map(|i| digest(i, i)).collect();
        let err = rt().block_on(threads.sign(bad, &ds)).unwrap_err();
        assert!(err.to_string().contains("refused 7"), "{err}");
        let good = echo(None);
        let sigs = rt().block_on(threads.sign(good, &ds)).unwrap();
        assert_eq!(sigs.len(), 5);
    }
}
