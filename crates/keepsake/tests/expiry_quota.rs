//! Limits through the library on the embedded canister: a resumed session that expired
//! meanwhile is restarted in a fresh session (and the result verifies), and a quota
//! refusal reaches the caller as a clear message.

mod common;

use std::rc::Rc;
use std::time::Duration;

use backend::api::{ConfigUpdate, Error};
use candid::Principal;
use keepsake::client::ClientError;
use keepsake::embedded::EmbeddedTransport;
use keepsake::journal::{Fingerprint, Journal};
use keepsake::upload::{self, NoProgress, StopAfter, UploadError, UploadOptions};
use keepsake::Client;
use sha2::{Digest, Sha256};

const CHUNK: u32 = 64 * 1024;

#[test]
fn expired_sessions_restart_and_quota_refusals_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let user = Principal::from_slice(&[0x10, 0x09, 0x77, 0x01]);
    let t =
        Rc::new(EmbeddedTransport::open(&dir.path().join("state"), common::wasm(), user).unwrap());
    let c = Client::new(Box::new(t.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        t.set_caller(ic_host::DEFAULT_CONTROLLER);
        c.admin_set_config(&ConfigUpdate {
            session_ttl_ns: Some(60_000_000_000),
            max_capsule_bytes: Some(3_000_000),
            ..Default::default()
        })
        .await
        .unwrap();
        t.set_caller(user);
        let cap = c.resolve_capsule(None).await.unwrap();

        // Expiry: interrupted after 3 of 16 chunks, two minutes pass, then resume.
        let file = dir.path().join("clip.bin");
        common::random_file(&file, 16 * CHUNK as usize, 3);
        let fp = Fingerprint::of_file(&file).unwrap();
        let mut j = Journal::open(&dir.path().join("journal.json")).unwrap();
        let mut opts = UploadOptions {
            chunk_size: Some(CHUNK),
            stop_after: Some(StopAfter::new(3)),
            ..Default::default()
        };
        let e = upload::upload_file(
            &c,
            &mut j,
            &file,
            &fp,
            cap.id,
            "video/mp4",
            &opts,
            &NoProgress,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                e,
                UploadError::Interrupted {
                    chunks_sent: 3,
                    chunks_total: 16,
                    ..
                }
            ),
            "{e:?}"
        );
        t.advance_time(Duration::from_secs(120));
        opts.stop_after = None;
        let r = upload::upload_file(
            &c,
            &mut j,
            &file,
            &fp,
            cap.id,
            "video/mp4",
            &opts,
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(r.chunks_sent, 16, "an expired session is started over");
        assert_eq!(
            r.blob.sha256.as_ref(),
            Sha256::digest(std::fs::read(&file).unwrap()).as_slice()
        );

        // Quota: 2 MB more do not fit in a 3 MB capsule holding 1 MB.
        let big = dir.path().join("big.bin");
        common::random_file(&big, 2_500_000, 4);
        let fp = Fingerprint::of_file(&big).unwrap();
        let e = upload::upload_file(
            &c,
            &mut j,
            &big,
            &fp,
            cap.id,
            "video/mp4",
            &opts,
            &NoProgress,
        )
        .await
        .unwrap_err();
        match &e {
            UploadError::Client(ClientError::Canister(Error::QuotaExceeded(_))) => {}
            other => panic!("expected QuotaExceeded, got {other:?}"),
        }
        assert!(e.to_string().starts_with("quota exceeded: capsule"), "{e}");

        // Admin calls are refused to a non-controller, clearly.
        let e = c
            .admin_set_config(&ConfigUpdate::default())
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("not allowed:"), "{e}");
    });
}
