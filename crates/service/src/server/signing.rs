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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use fsverity::FileDigest;
use verity_signing::{DistinctDigests, Signer, SignerError, Spreader};

/// Threads signing queued digests in order.
pub struct SigningThreads {
    queue: Mutex<Sender<Task>>,
}

/// A request's digests, queued: [`Queued::wait`] gives their signatures.
pub struct Queued {
    spreader: Spreader,
    rx: tokio::sync::oneshot::Receiver<Result<Vec<Vec<u8>>, SignerError>>,
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
    /// The first failure; once set, the rest of the batch is not signed.
    error: Mutex<Option<SignerError>>,
    done: Mutex<Option<tokio::sync::oneshot::Sender<Result<Vec<Vec<u8>>, SignerError>>>>,
}

impl SigningThreads {
    /// `threads` signing threads (the service starts one per core), named `sign-N` for
    /// `top -H` and profiles.
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
        self.enqueue(signer, digests)?.wait().await
    }

    /// Queues `digests` at once, in one piece: a request queued after this one is signed after
    /// it. Dropping the [`Queued`] before it is done skips what was not signed yet (the client
    /// went away or the request timed out), so abandoned work does not hold up later requests.
    pub fn enqueue(
        &self,
        signer: Arc<dyn Signer>,
        digests: &[FileDigest],
    ) -> Result<Queued, SignerError> {
        let distinct = DistinctDigests::new(digests);
        let unique: Vec<FileDigest> = distinct.unique.iter().map(|d| (*d).clone()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let n = unique.len();
        let spreader = distinct.spreader();
        if n == 0 {
            let _ = tx.send(Ok(Vec::new()));
            return Ok(Queued { spreader, rx });
        }
        let batch = Arc::new(Batch {
            signer,
            digests: unique,
            signatures: Mutex::new(vec![Vec::new(); n]),
            left: AtomicUsize::new(n),
            error: Mutex::new(None),
            done: Mutex::new(Some(tx)),
        });
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
        Ok(Queued { spreader, rx })
    }
}

impl Queued {
    /// The signatures, one per digest given to [`SigningThreads::enqueue`], in its order.
    pub async fn wait(self) -> Result<Vec<Vec<u8>>, SignerError> {
        let per_unique = self
            .rx
            .await
            .map_err(|_| SignerError::Crypto("signing threads stopped".into()))??;
        self.spreader
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
        // Once one digest of a batch failed, the rest of it is not worth signing; nor is a
        // batch nobody waits for any more.
        if !b.failed() && !b.abandoned() {
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

impl Batch {
    /// Whether a digest of the batch failed (a poisoned lock counts as failed).
    fn failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    /// Whether the request went away (its [`Queued`] was dropped).
    fn abandoned(&self) -> bool {
        self.done
            .lock()
            .map(|d| d.as_ref().is_none_or(|tx| tx.is_closed()))
            .unwrap_or(true)
    }
}

/// The last digest of a batch is done: hand the signatures (or the first error) over.
fn finish(b: &Batch) {
    let first_error = match b.error.lock() {
        Ok(mut e) => e.take(),
        Err(_) => Some(SignerError::Crypto("signing failed".into())),
    };
    let outcome = match first_error {
        Some(e) => Err(e),
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
    use std::sync::Condvar;

    /// Signs by echoing the digest once its gate is open, and records the order it was asked
    /// in (by each digest's first byte); can be told to fail or panic on one digest.
    struct Echo {
        order: Mutex<Vec<u8>>,
        gate: (Mutex<bool>, Condvar),
        fail_on: Option<u8>,
        panic_on: Option<u8>,
    }

    impl Signer for Echo {
        fn sign_digests(&self, digests: &[FileDigest]) -> Result<Vec<Vec<u8>>, SignerError> {
            digests.iter().map(|d| self.sign_one(d)).collect()
        }
        fn sign_one(&self, d: &FileDigest) -> Result<Vec<u8>, SignerError> {
            let first = d.as_bytes()[0];
            let (open, cv) = &self.gate;
            let mut g = open.lock().unwrap();
            while !*g {
                g = cv.wait(g).unwrap();
            }
            drop(g);
            self.order.lock().unwrap().push(first);
            if Some(first) == self.panic_on {
                panic!("signer bug on {first}");
            }
            if Some(first) == self.fail_on {
                return Err(SignerError::Crypto(format!("refused {first}")));
            }
            Ok(d.as_bytes().to_vec())
        }
        fn certificate_der(&self) -> &[u8] {
            &[]
        }
    }

    impl Echo {
        fn new(open: bool) -> Arc<Echo> {
            Arc::new(Echo {
                order: Mutex::new(Vec::new()),
                gate: (Mutex::new(open), Condvar::new()),
                fail_on: None,
                panic_on: None,
            })
        }
        fn open(&self) {
            *self.gate.0.lock().unwrap() = true;
            self.gate.1.notify_all();
        }
        fn order(&self) -> Vec<u8> {
            self.order.lock().unwrap().clone()
        }
    }

    fn digest(first: u8, n: u8) -> FileDigest {
        let mut b = [n; 32];
        b[0] = first;
        FileDigest::new(HashAlgorithm::Sha256, &b).unwrap()
    }

    fn batch(first: u8, n: u8) -> Vec<FileDigest> {
        (0..n).map(|i| digest(first, i)).collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn signatures_in_request_order_with_duplicates_signed_once() {
        let threads = SigningThreads::start(2).unwrap();
        let signer = Echo::new(true);
        let ds = vec![digest(1, 1), digest(2, 2), digest(1, 1), digest(3, 3)];
        let sigs = rt().block_on(threads.sign(signer.clone(), &ds)).unwrap();
        let want: Vec<Vec<u8>> = ds.iter().map(|d| d.as_bytes().to_vec()).collect();
        assert_eq!(sigs, want);
        assert_eq!(signer.order().len(), 3);
        assert!(rt().block_on(threads.sign(signer, &[])).unwrap().is_empty());
    }

    /// The order that kept requests from being buried under later ones (a rayon thread waiting
    /// in `join` ran the next request first): every digest of a request queued earlier is
    /// signed before any of one queued later, even when the later one arrives while the
    /// earlier one is being signed.
    #[test]
    fn an_earlier_request_is_signed_before_a_later_one_starts() {
        let threads = SigningThreads::start(1).unwrap();
        let signer = Echo::new(false);
        let a = threads.enqueue(signer.clone(), &batch(10, 20)).unwrap();
        let b = threads.enqueue(signer.clone(), &batch(20, 20)).unwrap();
        signer.open();
        let rt = rt();
        rt.block_on(b.wait()).unwrap();
        rt.block_on(a.wait()).unwrap();
        let want: Vec<u8> = [[10u8; 20], [20u8; 20]].concat();
        assert_eq!(signer.order(), want);
    }

    #[test]
    fn a_failure_fails_the_request_and_the_threads_go_on() {
        let threads = SigningThreads::start(2).unwrap();
        let bad = Arc::new(Echo {
            fail_on: Some(7),
            ..Arc::try_unwrap(Echo::new(true)).ok().unwrap()
        });
        let ds: Vec<FileDigest> = (5..10).map(|i| digest(i, i)).collect();
        let err = rt().block_on(threads.sign(bad, &ds)).unwrap_err();
        assert!(err.to_string().contains("refused 7"), "{err}");
        let sigs = rt().block_on(threads.sign(Echo::new(true), &ds)).unwrap();
        assert_eq!(sigs.len(), 5);
    }

    /// A signer that panics fails its request with an error instead of taking the thread (and
    /// with a one-thread pool, the whole service) down.
    #[test]
    fn a_panicking_signer_fails_the_request_and_the_thread_goes_on() {
        let threads = SigningThreads::start(1).unwrap();
        let bad = Arc::new(Echo {
            panic_on: Some(3),
            ..Arc::try_unwrap(Echo::new(true)).ok().unwrap()
        });
        let err = rt().block_on(threads.sign(bad, &batch(3, 2))).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let sigs = rt()
            .block_on(threads.sign(Echo::new(true), &batch(4, 3)))
            .unwrap();
        assert_eq!(sigs.len(), 3);
    }

    /// A request dropped while queued (its client went away, or it timed out) is not signed:
    /// the later request after it is served without waiting for dead work.
    #[test]
    fn a_request_dropped_while_queued_is_skipped() {
        let threads = SigningThreads::start(1).unwrap();
        let signer = Echo::new(false);
        let a = threads.enqueue(signer.clone(), &batch(1, 2)).unwrap();
        let gone = threads.enqueue(signer.clone(), &batch(2, 50)).unwrap();
        let c = threads.enqueue(signer.clone(), &batch(3, 2)).unwrap();
        drop(gone);
        signer.open();
        let rt = rt();
        rt.block_on(a.wait()).unwrap();
        rt.block_on(c.wait()).unwrap();
        assert_eq!(signer.order(), vec![1, 1, 3, 3]);
    }
}
