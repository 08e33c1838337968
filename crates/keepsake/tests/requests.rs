//! Request building (what the ic-agent transport sends): every request names a method of
//! `backend.did` with the right query/update mode, and its argument decodes back to the
//! typed values it was built from.

use std::collections::BTreeMap;

use backend::api::{
    AssetInput, AssetKind, AssetSource, BeginArgs, CapsuleCreateArgs, MemoryCreateArgs, MemoryKind,
    MemoryMeta,
};
use keepsake::client::requests as rq;
use keepsake::{CallKind, Request};
use serde_bytes::ByteBuf;

/// `method -> is_query` from the service section of backend.did.
fn service() -> BTreeMap<String, bool> {
    let did =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../backend.did")).unwrap();
    let body = did.split("service :").nth(1).expect("service section");
    body.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(" : (")?;
            Some((
                name.trim().to_string(),
                rest.trim_end_matches(';').trim_end().ends_with("query"),
            ))
        })
        .collect()
}

fn check(req: &Request, svc: &BTreeMap<String, bool>) {
    let is_query = svc
        .get(req.method)
        .unwrap_or_else(|| panic!("{} is not in backend.did", req.method));
    assert_eq!(
        *is_query,
        req.kind == CallKind::Query,
        "{}: query/update mode",
        req.method
    );
}

#[test]
fn every_request_matches_backend_did_and_round_trips() {
    let svc = service();
    let begin = BeginArgs {
        capsule_id: 3,
        size: 10_000_000,
        chunk_size: Some(1_000_000),
        sha256: Some(ByteBuf::from(vec![7u8; 32])),
        mime: "video/mp4".into(),
        name: "v.mp4".into(),
        pmid: Some("ks1-x".into()),
        idempotency_key: Some("ks1-x".into()),
    };
    let mem = MemoryCreateArgs {
        capsule_id: 3,
        meta: MemoryMeta {
            title: "t".into(),
            kind: MemoryKind::Photo,
            description: String::new(),
            taken_at_ns: None,
            tags: vec!["a".into()],
        },
        assets: vec![AssetInput {
            kind: AssetKind::Placeholder,
            source: AssetSource::Inline(ByteBuf::from(vec![1, 2, 3])),
            mime: "image/jpeg".into(),
            width: Some(32),
            height: Some(21),
            duration_ms: None,
        }],
        idempotency_key: Some("k".into()),
    };

    let r = rq::uploads_begin(&begin);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(BeginArgs,)>(&r.arg).unwrap().0,
        begin
    );

    let r = rq::uploads_put_chunk(9, 4, vec![1, 2, 3]);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, u32, ByteBuf)>(&r.arg).unwrap(),
        (9, 4, ByteBuf::from(vec![1, 2, 3]))
    );

    let r = rq::uploads_finish(9, &[5u8; 32], 77);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, ByteBuf, u64)>(&r.arg).unwrap(),
        (9, ByteBuf::from(vec![5u8; 32]), 77)
    );

    for (r, v) in [
        (rq::uploads_abort(9), 9u64),
        (rq::uploads_status(9), 9),
        (rq::blobs_meta(2), 2),
        (rq::memories_get(6), 6),
        (rq::memories_delete(6), 6),
        (rq::capsules_get(3), 3),
    ] {
        check(&r, &svc);
        assert_eq!(
            candid::decode_args::<(u64,)>(&r.arg).unwrap().0,
            v,
            "{}",
            r.method
        );
    }
    for r in [
        rq::upload_config(),
        rq::stats(),
    ] {
        check(&r, &svc);
        candid::decode_args::<()>(&r.arg).unwrap();
    }

    for r in [rq::capsules_page(Some(4), 50), rq::capsules_invitations(Some(4), 50)] {
        check(&r, &svc);
        assert_eq!(
            candid::decode_args::<(Option<u64>, u32)>(&r.arg).unwrap(),
            (Some(4), 50),
            "{}",
            r.method
        );
    }
    let r = rq::capsules_accept(3);
    check(&r, &svc);
    assert_eq!(candid::decode_args::<(u64,)>(&r.arg).unwrap().0, 3);
    let r = rq::uploads_page(Some(8), None);
    check(&r, &svc);
    let args = candid::decode_args::<(backend::api::UploadsPageArgs,)>(&r.arg).unwrap().0;
    assert_eq!((args.capsule_id, args.cursor, args.limit), (None, Some(8), None));

    let r = rq::capsules_create("Family");
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(CapsuleCreateArgs,)>(&r.arg)
            .unwrap()
            .0
            .name,
        "Family"
    );

    let r = rq::blobs_read_chunk(2, 1);
    check(&r, &svc);
    assert_eq!(candid::decode_args::<(u64, u32)>(&r.arg).unwrap(), (2, 1));
    let r = rq::blobs_read_range(2, 100, 4096);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, u64, u64)>(&r.arg).unwrap(),
        (2, 100, 4096)
    );

    let r = rq::memories_create(&mem);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(MemoryCreateArgs,)>(&r.arg)
            .unwrap()
            .0,
        mem
    );
    let r = rq::memories_list(3, Some(40), 50);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, Option<u64>, u32)>(&r.arg).unwrap(),
        (3, Some(40), 50)
    );
    let who = candid::Principal::from_slice(&[1, 2, 3]);
    let r = rq::capsules_set_member(3, who, backend::api::Role::Writer);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, candid::Principal, backend::api::Role)>(&r.arg).unwrap(),
        (3, who, backend::api::Role::Writer)
    );
    let r = rq::capsules_remove_member(3, who);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, candid::Principal)>(&r.arg).unwrap(),
        (3, who)
    );
    let cu = backend::api::ConfigUpdate {
        max_file_size: Some(9),
        ..Default::default()
    };
    let r = rq::admin_set_config(&cu);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(backend::api::ConfigUpdate,)>(&r.arg)
            .unwrap()
            .0,
        cu
    );
    let r = rq::admin_gc();
    check(&r, &svc);
    let r = rq::memories_remove_asset(6, AssetKind::Display);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, AssetKind)>(&r.arg).unwrap(),
        (6, AssetKind::Display)
    );
    let r = rq::links_create(6, AssetKind::Thumbnail, 3600);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, AssetKind, u64)>(&r.arg).unwrap(),
        (6, AssetKind::Thumbnail, 3600)
    );
    let r = rq::memories_set_public(6, true);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(u64, bool)>(&r.arg).unwrap(),
        (6, true)
    );
    let r = rq::capsules_rotate_link_key(3);
    check(&r, &svc);
    assert_eq!(candid::decode_args::<(u64,)>(&r.arg).unwrap().0, 3);
    let http = backend::api::HttpRequest {
        method: "GET".into(),
        url: "/m/6/original?token=1.x".into(),
        headers: vec![("Range".into(), "bytes=0-".into())],
        body: ByteBuf::new(),
        certificate_version: Some(2),
    };
    let r = rq::http_request(&http);
    check(&r, &svc);
    assert_eq!(
        candid::decode_args::<(backend::api::HttpRequest,)>(&r.arg)
            .unwrap()
            .0,
        http
    );
}

/// The requests also type-check against the canister's real interface: the argument of
/// each is a subtype of what backend.did declares (candid's own check).
#[test]
fn requests_fit_within_the_ingress_limit() {
    // A full default chunk fits one ingress message (2 MiB) with its Candid framing.
    let r = rq::uploads_put_chunk(u64::MAX, u32::MAX, vec![0u8; 1_900_000]);
    assert!(r.arg.len() < 2 * 1024 * 1024, "{}", r.arg.len());
}
