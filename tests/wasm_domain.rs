//! The capsule / memory domain at the Wasm level, in the embedded host (and on PocketIC
//! when `POCKET_IC_BIN` is set): access matrix, BRIEF scenarios 4 and 5, space reuse,
//! expiry by timer, dedup.

#[macro_use]
mod harness;

use std::time::Duration;

use backend::api::{self, *};
use candid::{Principal, Reserved};
use harness::*;
use serde_bytes::ByteBuf;

on_every_backend!(
    s4_s5_memory_with_four_assets_reads_back_identical,
    space_is_reused_after_deletes,
    the_same_file_twice_is_stored_once;
    // Adds members by principal: over HTTP its callers are their keys' principals.
    not_over_http: access_matrix,
);

fn meta(title: &str, kind: MemoryKind) -> MemoryMeta {
    MemoryMeta { title: title.into(), kind, description: String::new(), taken_at_ns: None, tags: vec![] }
}

fn asset(kind: AssetKind, source: AssetSource, img: Option<&image::DynamicImage>) -> AssetInput {
    AssetInput {
        kind,
        source,
        mime: "image/jpeg".into(),
        width: img.map(|i| i.width()),
        height: img.map(|i| i.height()),
        duration_ms: None,
    }
}

/// Reads a blob back through `blobs_read_range`, 2 MiB at a time.
fn read_by_ranges(b: &mut dyn Backend, who: Principal, blob_id: u64) -> Vec<u8> {
    let meta: api::Result<BlobMeta> = b.q(who, "blobs_meta", (blob_id,));
    let meta = meta.unwrap();
    let max: UploadConfig = b.q(who, "upload_config", ());
    let mut out = Vec::new();
    while (out.len() as u64) < meta.size {
        let len = max.max_read_bytes.min(meta.size - out.len() as u64);
        let r: api::Result<ByteBuf> = b.q(who, "blobs_read_range", (blob_id, out.len() as u64, len));
        out.extend_from_slice(&r.unwrap());
    }
    out
}

fn s4_s5_memory_with_four_assets_reads_back_identical(b: &mut dyn Backend) {
    let alice = user(40);
    let cap = b.capsule(alice);
    let img = photo(4000, 3000);
    let (display, thumb, placeholder) = (fit(&img, 2048), fit(&img, 512), fit(&img, 32));
    let bytes = [jpeg_bytes(&img), jpeg_bytes(&display), jpeg_bytes(&thumb), jpeg_bytes(&placeholder)];
    assert!(bytes[3].len() <= 32 * 1024, "placeholder fits inline");
    let pmid = "mem_beach";
    let blobs: Vec<BlobMeta> = bytes[..3].iter().map(|d| b.upload(alice, cap, d, Some(pmid))).collect();
    let args = MemoryCreateArgs {
        capsule_id: cap,
        meta: meta("Beach", MemoryKind::Photo),
        assets: vec![
            asset(AssetKind::Original, AssetSource::Blob(blobs[0].id), Some(&img)),
            asset(AssetKind::Display, AssetSource::Blob(blobs[1].id), Some(&display)),
            asset(AssetKind::Thumbnail, AssetSource::Blob(blobs[2].id), Some(&thumb)),
            asset(AssetKind::Placeholder, AssetSource::Inline(ByteBuf::from(bytes[3].clone())), Some(&placeholder)),
        ],
        idempotency_key: Some(pmid.into()),
    };
    // Atomic: with one bad asset in the list, nothing is written.
    let before = b.stats();
    let mut bad = args.clone();
    bad.assets[2].source = AssetSource::Blob(9_999);
    let r: api::Result<Memory> = b.call(alice, "memories_create", (bad,));
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    assert_eq!(b.stats(), before);

    let m: api::Result<Memory> = b.call(alice, "memories_create", (args.clone(),));
    let m = m.unwrap();
    let again: api::Result<Memory> = b.call(alice, "memories_create", (args,));
    assert_eq!(again.unwrap().id, m.id, "same idempotency key, same memory");

    // Scenario 5: every asset back, byte-identical, through the read API.
    let got: api::Result<Memory> = b.q(alice, "memories_get", (m.id,));
    let got = got.unwrap();
    assert_eq!(got.assets.len(), 4);
    for (a, want) in got.assets.iter().zip(&bytes) {
        let back = match (a.blob_id, &a.inline) {
            (Some(id), None) => read_by_ranges(b, alice, id),
            (None, Some(inline)) => inline.to_vec(),
            other => panic!("asset {:?} has {other:?}", a.kind),
        };
        assert!(back == *want, "{:?} differs", a.kind);
        assert_eq!(a.sha256.to_vec(), sha(want));
        let decoded = image::load_from_memory(&back).unwrap();
        assert_eq!((Some(decoded.width()), Some(decoded.height())), (a.width, a.height));
        println!("{:?}: {} bytes, {}x{}", a.kind, back.len(), decoded.width(), decoded.height());
    }
    let page: api::Result<MemoryPage> = b.q(alice, "memories_list", (cap, None::<u64>, 10u32));
    assert_eq!(page.unwrap().memories, vec![got]);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Stranger,
    /// Invited as a reader, has not accepted.
    Invitee,
    Reader,
    Writer,
    Owner,
    Controller,
    /// Writers with an open session when their role changed: removed by an owner,
    /// demoted to reader, or left by themselves.
    RemovedWriter,
    DemotedWriter,
    LeftWriter,
}

const EVERYONE: [Who; 10] = [
    Who::Anonymous,
    Who::Stranger,
    Who::Invitee,
    Who::Reader,
    Who::Writer,
    Who::Owner,
    Who::Controller,
    Who::RemovedWriter,
    Who::DemotedWriter,
    Who::LeftWriter,
];

/// Every method of `backend.did`, with whether it is a query.
fn did_methods() -> Vec<(String, bool)> {
    use candid::types::TypeInner;
    let did = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/backend.did")).unwrap();
    let (env, actor) = candid_parser::utils::CandidSource::Text(&did).load().unwrap();
    let actor = actor.unwrap();
    let service = match env.trace_type(&actor).unwrap().as_ref() {
        TypeInner::Class(_, s) => s.clone(),
        _ => actor,
    };
    let TypeInner::Service(methods) = env.trace_type(&service).unwrap().as_ref().clone() else { panic!("service") };
    methods
        .iter()
        .map(|(name, ty)| {
            let f = env.as_func(ty).unwrap();
            (name.clone(), f.modes.iter().any(|m| matches!(m, candid::types::FuncMode::Query)))
        })
        .collect()
}

/// Every endpoint x {anonymous, stranger, invitee, reader, writer, owner, controller,
/// and writers whose role changed mid-session: removed, demoted, left}: allowed, or
/// refused (`Unauthorized`, `NotFound`, or turned away by inspect_message) with no
/// stable-memory write and unchanged stats.
fn access_matrix(b: &mut dyn Backend) {
    let (owner, writer, reader, stranger, invitee) = (user(50), user(51), user(52), user(53), user(54));
    let (removed, demoted, left, extra) = (user(55), user(56), user(57), user(58));
    let principal = |w: Who| match w {
        Who::Anonymous => Principal::anonymous(),
        Who::Stranger => stranger,
        Who::Invitee => invitee,
        Who::Reader => reader,
        Who::Writer => writer,
        Who::Owner => owner,
        Who::Controller => controller(),
        Who::RemovedWriter => removed,
        Who::DemotedWriter => demoted,
        Who::LeftWriter => left,
    };
    let join = |b: &mut dyn Backend, cap: u64, p: Principal, role: Role| {
        let r: api::Result<Capsule> = b.call(owner, "capsules_set_member", (cap, p, role));
        r.unwrap();
        let r: api::Result<Capsule> = b.call(p, "capsules_accept", (cap,));
        r.unwrap();
    };
    // the install's timers: HTTP certification and the link secret
    b.advance_time(Duration::from_secs(1));
    let cap = b.capsule(owner);
    join(b, cap, writer, Role::Writer);
    join(b, cap, reader, Role::Reader);
    let r: api::Result<Capsule> = b.call(owner, "capsules_set_member", (cap, invitee, Role::Reader));
    r.unwrap();
    let data = file(300_000, 50);
    let blob = b.upload(owner, cap, &data, None);
    let note = |cap| MemoryCreateArgs { capsule_id: cap, meta: meta("n", MemoryKind::Note), assets: vec![], idempotency_key: None };
    let mem: api::Result<Memory> = b.call(owner, "memories_create", (note(cap),));
    let mem = mem.unwrap().id;
    let session = b.begin(writer, cap, 200_000, None);
    // Three writers open sessions; then one is removed, one demoted, one leaves.
    let mut own_session = [(Who::RemovedWriter, removed), (Who::DemotedWriter, demoted), (Who::LeftWriter, left)].map(|(who, p)| (who, p, 0));
    for (_, p, id) in &mut own_session {
        join(b, cap, *p, Role::Writer);
        let s = b.begin(*p, cap, 200_000, None);
        b.put(*p, &s, 0, &file(200_000, 51)).unwrap();
        *id = s.id;
    }
    let r: api::Result<Capsule> = b.call(owner, "capsules_remove_member", (cap, removed));
    r.unwrap();
    let r: api::Result<Capsule> = b.call(owner, "capsules_set_member", (cap, demoted, Role::Reader));
    r.unwrap();
    let r: api::Result<Capsule> = b.call(left, "capsules_remove_member", (cap, left));
    r.unwrap();
    // The session a caller names: their own if they opened one, else the writer's.
    let writer_session = session.id;
    let session_of = move |who: Who| own_session.iter().find(|o| o.0 == who).map_or(writer_session, |o| o.2);

    type Args = Box<dyn Fn(&mut dyn Backend, Who) -> Vec<u8>>;
    let e = |v: Vec<u8>| -> Args { Box::new(move |_, _| v.clone()) };
    use Who::*;
    let anyone = &EVERYONE[..];
    let signed_in = &EVERYONE[1..];
    let readers = &[Reader, Writer, Owner, Controller, DemotedWriter][..];
    let writers = &[Writer, Owner, Controller][..];
    let owners = &[Owner, Controller][..];
    let creator = &[Writer][..];
    let creator_or_owner = &[Writer, Owner, Controller, DemotedWriter][..];
    let members_or_invited = &[Invitee, Reader, Writer, Owner, DemotedWriter][..];
    let controllers = &[Controller][..];
    let inline_other = asset(AssetKind::Other, AssetSource::Inline(ByteBuf::from(vec![1u8; 100])), None);
    let begin = BeginArgs {
        capsule_id: cap,
        size: 10,
        chunk_size: None,
        sha256: None,
        mime: String::new(),
        name: String::new(),
        pmid: None,
        idempotency_key: None,
    };
    let enc = |v: std::result::Result<Vec<u8>, candid::Error>| v.unwrap();
    // a fresh memory for every caller, made by the owner (with an `Other` asset or not)
    let fresh_memory = move |b: &mut dyn Backend, with_other: bool| -> u64 {
        let mut args = note(cap);
        if with_other {
            args.assets.push(asset(AssetKind::Other, AssetSource::Inline(ByteBuf::from(vec![2u8; 10])), None));
        }
        let m: api::Result<Memory> = b.call(owner, "memories_create", (args,));
        m.unwrap().id
    };
    let seed = std::cell::Cell::new(1000u64);
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, Args, &[Who])> = vec![
        ("upload_config", e(enc(candid::encode_args(()))), anyone),
        ("stats", e(enc(candid::encode_args(()))), controllers),
        ("capsules_list", e(enc(candid::encode_args(()))), anyone),
        ("capsules_page", e(enc(candid::encode_args((None::<u64>, 10u32)))), anyone),
        ("capsules_invitations", e(enc(candid::encode_args((None::<u64>, 10u32)))), anyone),
        ("uploads_list", e(enc(candid::encode_args(()))), anyone),
        ("uploads_page", e(enc(candid::encode_one(UploadsPageArgs { capsule_id: Some(cap), cursor: None, limit: None }))), owners),
        ("capsules_create", e(enc(candid::encode_one(CapsuleCreateArgs { name: "c".into() }))), signed_in),
        ("capsules_get", e(enc(candid::encode_one(cap))), readers),
        ("capsules_set_member", e(enc(candid::encode_args((cap, extra, Role::Reader)))), owners),
        (
            "capsules_remove_member",
            // `extra` invited again before every call
            Box::new(move |b: &mut dyn Backend, _| {
                let r: api::Result<Capsule> = b.call(owner, "capsules_set_member", (cap, extra, Role::Reader));
                r.unwrap();
                candid::encode_args((cap, extra)).unwrap()
            }),
            owners,
        ),
        ("uploads_begin", e(enc(candid::encode_one(begin))), writers),
        (
            "uploads_put_chunk",
            Box::new(move |_, who| candid::encode_args((session_of(who), 0u32, ByteBuf::from(vec![0u8; 200_000]))).unwrap()),
            creator,
        ),
        ("uploads_status", Box::new(move |_, who| candid::encode_one(session_of(who)).unwrap()), creator_or_owner),
        (
            "uploads_finish",
            Box::new(move |_, who| candid::encode_args((session_of(who), ByteBuf::from(vec![0u8; 32]), 200_000u64)).unwrap()),
            creator,
        ),
        (
            "uploads_abort",
            // the writer's sessions are kept open for the other rows: each call gets a fresh one
            Box::new(move |b: &mut dyn Backend, who| {
                let id = if matches!(who, RemovedWriter | DemotedWriter | LeftWriter) {
                    session_of(who)
                } else {
                    b.begin(writer, cap, 10, None).id
                };
                candid::encode_one(id).unwrap()
            }),
            creator_or_owner,
        ),
        ("blobs_meta", e(enc(candid::encode_one(blob.id))), readers),
        ("blobs_read_chunk", e(enc(candid::encode_args((blob.id, 0u32)))), readers),
        ("blobs_read_range", e(enc(candid::encode_args((blob.id, 0u64, 1000u64)))), readers),
        ("blobs_list", e(enc(candid::encode_args((cap, None::<u64>, 10u32)))), readers),
        (
            "blobs_delete",
            // a fresh blob no memory uses, for every caller
            Box::new(move |b: &mut dyn Backend, _| {
                seed.set(seed.get() + 1);
                let loose = b.upload(owner, cap, &file(1000, seed.get()), None);
                candid::encode_one(loose.id).unwrap()
            }),
            writers,
        ),
        ("memories_create", e(enc(candid::encode_one(note(cap)))), writers),
        ("memories_get", e(enc(candid::encode_one(mem))), readers),
        ("memories_list", e(enc(candid::encode_args((cap, None::<u64>, 10u32)))), readers),
        ("memories_update", e(enc(candid::encode_args((mem, meta("renamed", MemoryKind::Note))))), writers),
        (
            "memories_add_asset",
            Box::new(move |b: &mut dyn Backend, _| candid::encode_args((fresh_memory(b, false), inline_other.clone())).unwrap()),
            writers,
        ),
        (
            "memories_remove_asset",
            Box::new(move |b: &mut dyn Backend, _| candid::encode_args((fresh_memory(b, true), AssetKind::Other)).unwrap()),
            writers,
        ),
        ("memories_delete", Box::new(move |b: &mut dyn Backend, _| candid::encode_one(fresh_memory(b, false)).unwrap()), writers),
        // HTTP: a member's request is served, everyone else's is a 403 (see below)
        (
            "http_request",
            Box::new(move |b: &mut dyn Backend, _| {
                let url = format!("/m/{}/other", fresh_memory(b, true));
                let req = HttpRequest { method: "GET".into(), url, headers: vec![], body: ByteBuf::new(), certificate_version: Some(2) };
                candid::encode_one(req).unwrap()
            }),
            readers,
        ),
        ("links_create", Box::new(move |b: &mut dyn Backend, _| candid::encode_args((fresh_memory(b, true), AssetKind::Other, 600u64)).unwrap()), readers),
        ("memories_set_public", e(enc(candid::encode_args((mem, true)))), owners),
        ("capsules_rotate_link_key", e(enc(candid::encode_one(cap))), owners),
        ("admin_set_config", e(enc(candid::encode_one(ConfigUpdate::default()))), controllers),
        ("admin_gc", e(enc(candid::encode_args(()))), controllers),
        // only a directory named by the controllers (none here), not even a controller
        ("directory_capsules_create", e(enc(candid::encode_one(DirectoryCapsuleArgs { id: 900, owner, name: "d".into() }))), &[][..]),
        // last: accepting makes the invitee a member
        ("capsules_accept", e(enc(candid::encode_one(cap))), members_or_invited),
    ];
    let methods = did_methods();
    let mut covered: Vec<&str> = table.iter().map(|r| r.0).collect();
    covered.sort();
    let mut all: Vec<&str> = methods.iter().map(|m| m.0.as_str()).collect();
    all.sort();
    assert_eq!(covered, all, "the matrix covers every method of backend.did");
    let mut cases = 0;
    for (method, args, allowed) in &table {
        let is_query = methods.iter().any(|(m, q)| m == method && *q);
        for who in EVERYONE {
            let arg = args(b, who);
            let before = b.stats();
            let reply = if is_query { b.query(principal(who), method, arg) } else { b.update(principal(who), method, arg) };
            let writes = b.last_stable_writes();
            let refused = match &reply {
                Ok(raw) if *method == "http_request" => {
                    let r: HttpResponse = candid::decode_one(raw).unwrap();
                    assert!(matches!(r.status_code, 200 | 403), "{method} as {who:?}: {}", r.status_code);
                    r.status_code == 403
                }
                // Endpoints without a Result (lists, config) decode to `None` here.
                Ok(raw) => matches!(
                    candid::decode_one::<api::Result<Reserved>>(raw).ok(),
                    Some(Err(Error::Unauthorized(_) | Error::NotFound(_)))
                ),
                // inspect_message turned it away, or a guard rejected it (stats)
                Err(r) if r.code == ic_host::reject_code::CANISTER_REJECT => true,
                Err(r) => panic!("{method} as {who:?} trapped: {}", r.message),
            };
            assert_eq!(!refused, allowed.contains(&who), "{method} as {who:?}: {reply:?}");
            if refused {
                assert_eq!(b.stats(), before, "{method} as {who:?} was refused but changed stats");
                if let Some(w) = writes {
                    assert_eq!(w, 0, "{method} as {who:?} was refused but wrote {w} stable bytes");
                }
            }
            cases += 1;
        }
    }
    println!("access matrix: {} endpoints x {} callers = {cases} cases", table.len(), EVERYONE.len());
    assert_eq!(cases, table.len() * EVERYONE.len());
}

/// Upload 10 x 20 MB, delete all, upload 10 x 20 MB again: stable memory grows by at
/// most 5 % in the second round.
fn space_is_reused_after_deletes(b: &mut dyn Backend) {
    let alice = user(60);
    let cap = b.capsule(alice);
    let round = |b: &mut dyn Backend, seed: u64| -> Vec<u64> {
        (0..10)
            .map(|i| {
                let blob = b.upload(alice, cap, &file(20_000_000, seed + i), None);
                let args = MemoryCreateArgs {
                    capsule_id: cap,
                    meta: meta("video", MemoryKind::Video),
                    assets: vec![asset(AssetKind::Original, AssetSource::Blob(blob.id), None)],
                    idempotency_key: None,
                };
                let m: api::Result<Memory> = b.call(alice, "memories_create", (args,));
                m.unwrap().id
            })
            .collect()
    };
    let first = round(b, 600);
    let after_first = b.stats();
    for id in first {
        let r: api::Result<()> = b.call(alice, "memories_delete", (id,));
        r.unwrap();
    }
    let pending = b.stats();
    assert_eq!((pending.blobs, pending.gc_pending_bytes), (0, 200_000_000));
    // housekeeping runs on its timer
    b.advance_time(Duration::from_secs(601));
    let freed = b.stats();
    assert_eq!(freed.gc_pending_bytes, 0, "housekeeping freed every queued chunk");
    round(b, 700);
    let after_second = b.stats();
    let growth = after_second.stable_pages as f64 / after_first.stable_pages as f64 - 1.0;
    println!(
        "stable pages: {} after round 1, {} after round 2 ({:+.2} %); arena {} -> {} bytes",
        after_first.stable_pages,
        after_second.stable_pages,
        growth * 100.0,
        after_first.arena_bytes,
        after_second.arena_bytes
    );
    assert!(growth <= 0.05, "stable memory grew {:.1} % in the second round", growth * 100.0);
}

fn the_same_file_twice_is_stored_once(b: &mut dyn Backend) {
    let alice = user(70);
    let cap = b.capsule(alice);
    let data = file(7_000_000, 70);
    let first = b.upload(alice, cap, &data, None);
    let arena = b.stats().arena_bytes;
    let second = b.upload(alice, cap, &data, None);
    assert_eq!(first.id, second.id);
    b.advance_time(Duration::from_secs(601));
    let st = b.stats();
    assert_eq!((st.blobs, st.blob_bytes, st.gc_pending_bytes), (1, data.len() as u64, 0));
    assert!(st.arena_bytes <= arena, "the duplicate's chunks were freed");
}

/// Many expired sessions at once: the timer frees them in passes that each stay far
/// below the instruction limit (embedded host: per-tick counts printed).
#[test]
fn expiry_is_collected_by_the_timer_in_bounded_ticks() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    let mut callers = 0;
    let mut chunks = 0;
    for c in 0..2u8 {
        let who = user(80 + c);
        let cap = b.capsule(who);
        for s in 0..40 {
            let data = file(65_536 * 16, u64::from(c) * 100 + s);
            let sess = b.begin_chunked(who, cap, data.len(), None, Some(65_536));
            for i in 0..sess.chunk_count - 1 {
                b.put(who, &sess, i, &data).unwrap();
                chunks += 1;
            }
        }
        callers += 1;
    }
    let before = b.stats();
    assert_eq!(before.open_sessions, 80);
    b.advance_time(Duration::from_secs(24 * 3600 + 1));
    let st = b.stats();
    assert_eq!((st.open_sessions, st.session_bytes, st.gc_pending_bytes), (0, 0, 0));
    assert_eq!(st.bytes_freed_total, before.session_bytes);
    let ticks = &e.timer_ticks;
    let max = ticks.iter().copied().max().unwrap_or(0);
    println!(
        "expiry of {} sessions from {callers} callers ({chunks} chunks): {} timer ticks, max {max} instructions ({:.4} % of the 40 B limit): {ticks:?}",
        before.open_sessions,
        ticks.len(),
        max as f64 / 4e8
    );
    assert!(ticks.len() > 1, "the work was split across ticks");
    assert!(max < 2_000_000_000, "a housekeeping tick came near the limit: {max}");
}
