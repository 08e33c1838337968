//! The upload engine through the library, over the embedded canister wrapped in test
//! transports: N chunks really are in flight, transient failures are retried (also when
//! the reply of a stored chunk was lost), and a typed refusal is never retried.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use candid::Principal;
use futures::future::LocalBoxFuture;
use keepsake::client::{ClientError, RetryPolicy};
use keepsake::embedded::EmbeddedTransport;
use keepsake::journal::{Fingerprint, Journal};
use keepsake::upload::{self, NoProgress, UploadError, UploadOptions};
use keepsake::{Client, Request, Transport, TransportError};
use sha2::{Digest, Sha256};

/// Wraps a transport: delays chunk puts (to measure concurrency) and injects failures.
struct TestTransport {
    inner: EmbeddedTransport,
    delay: Duration,
    in_flight: Cell<usize>,
    max_in_flight: Cell<usize>,
    calls: RefCell<BTreeMap<&'static str, u32>>,
    /// The first put of every n-th chunk fails transiently before reaching the canister.
    fail_before_every: u32,
    /// The first put of every n-th chunk (counted from 1) reaches the canister, then its
    /// reply is "lost".
    lose_reply_every: u32,
    /// Puts per chunk index so far. Failures are injected per chunk, not per call, so
    /// that however calls interleave, a chunk never exhausts its retries.
    attempts: RefCell<BTreeMap<u32, u32>>,
}

impl TestTransport {
    fn new(dir: &std::path::Path) -> Self {
        let caller = Principal::from_slice(&[0x10, 0x42, 0x77, 0x01]);
        Self {
            inner: EmbeddedTransport::open(dir, common::wasm(), caller).unwrap(),
            delay: Duration::ZERO,
            in_flight: Cell::new(0),
            max_in_flight: Cell::new(0),
            calls: RefCell::new(BTreeMap::new()),
            fail_before_every: 0,
            lose_reply_every: 0,
            attempts: RefCell::new(BTreeMap::new()),
        }
    }
    fn count(&self, method: &str) -> u32 {
        *self.calls.borrow().get(method).unwrap_or(&0)
    }
}

impl Transport for TestTransport {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            *self.calls.borrow_mut().entry(req.method).or_default() += 1;
            let is_put = req.method == "uploads_put_chunk";
            let (mut fail, mut lose) = (false, false);
            if is_put {
                let (_, idx, _): (u64, u32, serde_bytes::ByteBuf) =
                    candid::decode_args(&req.arg).unwrap();
                let attempt = {
                    let mut a = self.attempts.borrow_mut();
                    let e = a.entry(idx).or_default();
                    *e += 1;
                    *e
                };
                let fails_first = self.fail_before_every > 0 && idx % self.fail_before_every == 0;
                fail = fails_first && attempt == 1;
                // The first attempt that reaches the canister.
                let reaches_first = attempt == 1 + u32::from(fails_first);
                lose =
                    self.lose_reply_every > 0 && idx % self.lose_reply_every == 1 && reaches_first;
            }
            if is_put {
                if fail {
                    return Err(TransportError::Transient(
                        "injected: connection reset".into(),
                    ));
                }
                self.in_flight.set(self.in_flight.get() + 1);
                self.max_in_flight
                    .set(self.max_in_flight.get().max(self.in_flight.get()));
                tokio::time::sleep(self.delay).await;
                self.in_flight.set(self.in_flight.get() - 1);
            }
            let r = self.inner.call(req).await;
            if lose {
                return Err(TransportError::Transient("injected: reply lost".into()));
            }
            r
        })
    }
    fn caller(&self) -> Principal {
        self.inner.caller()
    }
    fn target(&self) -> String {
        self.inner.target()
    }
}

/// A client over the test transport, which stays inspectable (shared through an `Rc`).
fn client(t: TestTransport) -> (Client, Rc<TestTransport>) {
    let t = Rc::new(t);
    let c = Client::new(Box::new(t.clone())).with_retry(RetryPolicy {
        attempts: 5,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..Default::default()
    });
    (c, t)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

const CHUNK: u32 = 64 * 1024;

fn setup(len: usize) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("data.bin");
    common::random_file(&f, len, 5);
    let bytes = std::fs::read(&f).unwrap();
    (dir, f, bytes)
}

#[test]
fn keeps_n_chunks_in_flight_and_retries_transient_failures() {
    let (dir, file, bytes) = setup(40 * CHUNK as usize + 123);
    let mut t = TestTransport::new(&dir.path().join("state"));
    t.delay = Duration::from_millis(15);
    t.fail_before_every = 5;
    t.lose_reply_every = 7;
    let (c, t) = client(t);
    rt().block_on(async {
        let cap = c.resolve_capsule(None).await.unwrap();
        let fp = Fingerprint::of_file(&file).unwrap();
        let mut j = Journal::in_memory();
        let opts = UploadOptions {
            in_flight: 8,
            chunk_size: Some(CHUNK),
            stop_after: None,
        };
        let r = upload::upload_file(
            &c,
            &mut j,
            &file,
            &fp,
            cap.id,
            "application/octet-stream",
            &opts,
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(r.chunks_total, 41);
        assert_eq!(r.chunks_sent, 41);
        assert_eq!(r.blob.sha256.as_ref(), Sha256::digest(&bytes).as_slice());
        assert_eq!(t.max_in_flight.get(), 8, "8 chunk calls overlap");
        assert!(
            t.count("uploads_put_chunk") > 41 + 41 / 5,
            "failed calls were retried: {}",
            t.count("uploads_put_chunk")
        );
        // The bytes read back equal the file.
        let mut back = Vec::new();
        for i in 0..r.blob.chunk_count {
            back.extend(c.blobs_read_chunk(r.blob_id, i).await.unwrap());
        }
        assert_eq!(back, bytes);
    });
}

#[test]
fn a_typed_refusal_is_never_retried() {
    let (dir, file, _) = setup(3 * CHUNK as usize);
    let (c, t) = client(TestTransport::new(&dir.path().join("state")));
    rt().block_on(async {
        let fp = Fingerprint::of_file(&file).unwrap();
        let mut j = Journal::in_memory();
        let opts = UploadOptions {
            chunk_size: Some(CHUNK),
            ..Default::default()
        };
        let e = upload::upload_file(
            &c,
            &mut j,
            &file,
            &fp,
            4242,
            "application/octet-stream",
            &opts,
            &NoProgress,
        )
        .await
        .unwrap_err();
        match &e {
            UploadError::Client(ClientError::Canister(err)) => {
                assert!(
                    matches!(
                        err,
                        backend::api::Error::NotFound(_) | backend::api::Error::Unauthorized(_)
                    ),
                    "{err:?}"
                )
            }
            other => panic!("expected a typed refusal, got {other:?}"),
        }
        assert_eq!(t.count("uploads_begin"), 1, "refusals are not retried");
        assert_eq!(t.count("uploads_put_chunk"), 0);
        // A bad digest is refused with a clear message, once.
        let cap = c.resolve_capsule(None).await.unwrap();
        let s = c
            .uploads_begin(&backend::api::BeginArgs {
                capsule_id: cap.id,
                size: 5,
                chunk_size: None,
                sha256: None,
                mime: "text/plain".into(),
                name: "x".into(),
                pmid: None,
                idempotency_key: None,
            })
            .await
            .unwrap();
        c.uploads_put_chunk(s.id, 0, b"hello".to_vec())
            .await
            .unwrap();
        let e = upload::finish(&c, s.id, &[0u8; 32], 5).await.unwrap_err();
        assert!(e.to_string().starts_with("checksum mismatch:"), "{e}");
        assert_eq!(t.count("uploads_finish"), 1);
    });
}
