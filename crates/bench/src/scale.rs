//! Scale with count: what one call costs when a capsule already holds 1k, 10k, 100k
//! memories, the heap and stable memory it takes, and what an upgrade costs then
//! (`install_code`, then the first `http_request` with no timer run in between, checked
//! as the HTTP gateway checks it, then whatever background passes the timers still
//! run). A second measurement fills a canister to 1 M certified responses (memories of
//! 4 assets over one blob of 2,000 parts). Every figure is an instruction count of the
//! embedded host, counted as the IC counts.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use backend::api::{
    AssetInput, AssetKind, AssetSource, BeginArgs, BlobMeta, Capsule, CapsuleCreateArgs, ConfigUpdate, Error, HttpRequest,
    HttpResponse, Memory, MemoryCreateArgs, MemoryKind, MemoryMeta, MemoryPage, Session, UploadConfig,
};
use candid::Principal;
use ic_host::Host;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::data::File;

#[path = "../../../tests/common/verify.rs"]
mod gateway_check;
use crate::keepsake::{upload, Canister, USER};
use crate::meter::{call, ok, Msg};

type Res<T> = std::result::Result<T, Error>;

/// The kinds of the 4-asset memories of the count table (inline, one part each).
const FOUR_INLINE: [AssetKind; 4] = [AssetKind::Thumbnail, AssetKind::Placeholder, AssetKind::Preview, AssetKind::Poster];
/// The kinds of the memories of the 1 M responses row (each over the whole blob).
const FOUR_BLOB: [AssetKind; 4] = [AssetKind::Original, AssetKind::Display, AssetKind::Preview, AssetKind::Other];

/// Certified responses of one URL of an asset of `parts` parts (what
/// `src/domain/http_certify.rs` puts in the tree): the 304 and 416, the 403 under
/// `/m/…` only, the 200 if it has one part, and one 206 a part.
fn url_responses(parts: u64, memory_url: bool) -> u64 {
    2 + u64::from(memory_url) + u64::from(parts == 1) + parts
}

/// What the first `http_request` after an upgrade answered.
pub struct FirstRequest {
    pub status: u16,
    pub instructions: u64,
    /// `Ok` if `ic-response-verification` (v2, the host's root key) accepts it.
    pub verified: std::result::Result<(), String>,
    pub certificate_header: bool,
}

impl Default for FirstRequest {
    fn default() -> Self {
        FirstRequest { status: 0, instructions: 0, verified: Err("not asked".into()), certificate_header: false }
    }
}

/// From `install_code` to the first verified `200`, and the timers after it.
#[derive(Default)]
pub struct AfterUpgrade {
    pub upgrade: u64,
    pub first: FirstRequest,
    /// Timer messages (and what they caused) that ran before the first verified 200
    /// of the public memory's URL: none are run unless a request was not one.
    pub messages_before_200: usize,
    /// Every message the timers ran after the upgrade, until none was due.
    pub passes: Vec<u64>,
}

impl AfterUpgrade {
    fn largest(&self) -> u64 {
        self.passes.iter().copied().max().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.passes.iter().sum()
    }
}

/// The figures at one count of memories.
pub struct Row {
    pub memories: u64,
    pub create: u64,
    /// `memories_create` of a memory with 4 inline assets at the same count.
    pub create4: u64,
    pub get: u64,
    pub list_page: u64,
    pub begin: u64,
    pub finish: u64,
    pub heap: u64,
    pub stable: u64,
    /// Certified responses, computed from what was created (no endpoint returns it).
    pub responses: u64,
    pub after: AfterUpgrade,
}

/// The canister filled to `responses` certified responses.
pub struct Full {
    pub memories: u64,
    pub parts: u32,
    pub chunk_size: u32,
    pub target: u64,
    pub responses: u64,
    /// `memories_create` of the last 4-asset memory, and the largest of them.
    pub create_last: u64,
    pub create_max: u64,
    pub heap: u64,
    pub stable: u64,
    pub after: AfterUpgrade,
    /// `Range: bytes=0-` of the last memory's original right after the first request.
    pub range: FirstRequest,
}

fn inline_asset(kind: AssetKind, bytes: Vec<u8>) -> AssetInput {
    AssetInput {
        kind,
        source: AssetSource::Inline(ByteBuf::from(bytes)),
        mime: "image/jpeg".into(),
        width: Some(8),
        height: Some(8),
        duration_ms: None,
    }
}

fn meta(n: u64) -> MemoryMeta {
    MemoryMeta {
        title: format!("memory {n}"),
        kind: MemoryKind::Photo,
        description: String::new(),
        taken_at_ns: Some(n),
        tags: vec!["bench".into()],
    }
}

/// Memory `n` with one inline thumbnail, or 4 inline assets (distinct bytes each).
fn memory_args(capsule: u64, n: u64, kinds: &[AssetKind]) -> MemoryCreateArgs {
    let assets = kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| inline_asset(k, [n.to_le_bytes(), (i as u64).to_le_bytes()].concat().repeat(4)))
        .collect();
    MemoryCreateArgs { capsule_id: capsule, meta: meta(n), assets, idempotency_key: None }
}

fn must<T>(r: Res<T>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: {e:?}"))
}

fn create(host: &mut Host, args: MemoryCreateArgs) -> Result<(u64, Msg)> {
    let (m, msg): (Res<Memory>, Msg) = ok(host, true, USER, "memories_create", (args,), 0)?;
    Ok((must(m, "memories_create")?.id, msg))
}

/// One round of timers: those due now, else those due within a second (the
/// certification passes run on a 1 s interval timer). The messages they ran.
fn timer_round(host: &mut Host) -> Vec<u64> {
    let mut ran = host.tick();
    if ran.is_empty() {
        ran = host.advance_time(Duration::from_secs(1));
    }
    ran.iter().map(|r| r.instructions).collect()
}

/// Runs timers until a round runs nothing; every message's instructions.
fn run_timers(host: &mut Host) -> Result<Vec<u64>> {
    let mut all = Vec::new();
    for _ in 0..100_000 {
        let ran = timer_round(host);
        if ran.is_empty() {
            return Ok(all);
        }
        all.extend(ran);
    }
    bail!("timers still ran after 100,000 rounds")
}

/// Checks a response as the HTTP gateway does (the tests' checker, under the host's
/// root key).
fn verify(host: &Host, req: &HttpRequest, r: &HttpResponse) -> std::result::Result<(), String> {
    gateway_check::verify(&host.root_key(), host.canister_id().as_slice(), req, r, host.time())
}

/// A GET by `caller` (anonymous: as the gateway forwards a browser's), checked.
fn get(host: &mut Host, caller: Principal, url: &str, headers: &[(&str, &str)]) -> Result<FirstRequest> {
    let req = HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: ByteBuf::new(),
        certificate_version: Some(2),
    };
    let c = call::<_, HttpResponse>(host, false, caller, "http_request", (req.clone(),), 0)?;
    let r = c.reply.map_err(|e| anyhow!("http_request {url} was rejected: {e}"))?;
    Ok(FirstRequest {
        status: r.status_code,
        instructions: c.msg.instructions,
        verified: verify(host, &req, &r),
        certificate_header: r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("ic-certificate")),
    })
}

/// Upgrades to the same Wasm, asks for `url` at once (no timer run in between), then
/// (only if that was not a verified 200) runs timer rounds until it is; then runs the
/// timers out.
fn upgrade_then_get(host: &mut Host, wasm: &[u8], url: &str) -> Result<AfterUpgrade> {
    let init = candid::encode_args(())?;
    let up = host.upgrade(wasm, &init).map_err(|e| anyhow!("upgrade: {e}"))?;
    let mut a = AfterUpgrade { upgrade: up.instructions, ..Default::default() };
    // The host runs no timer in an upgrade; count any it reports all the same.
    a.messages_before_200 = host.last_messages().iter().filter(|r| r.method.contains("timer")).count();
    a.first = get(host, Principal::anonymous(), url, &[])?;
    let mut r = FirstRequest { status: a.first.status, verified: a.first.verified.clone(), ..Default::default() };
    while r.status != 200 || r.verified.is_err() {
        let ran = timer_round(host);
        if ran.is_empty() {
            bail!("{url} answers {} ({:?}) after the upgrade and no timer is left", r.status, r.verified);
        }
        a.messages_before_200 += ran.len();
        a.passes.extend(ran);
        r = get(host, Principal::anonymous(), url, &[])?;
    }
    a.passes.extend(run_timers(host)?);
    Ok(a)
}

fn heap_and_stable(host: &Host) -> Result<(u64, u64)> {
    let status = host.canister_status(host.canister_id()).ok_or_else(|| anyhow!("no canister"))?;
    let heap = u64::try_from(status.memory_metrics.wasm_memory_size.0).unwrap_or(u64::MAX);
    Ok((heap, host.stable_size_bytes()))
}

/// Runs the backend `wasm` up to each of `counts` memories in one capsule.
pub fn run(wasm: &[u8], counts: &[u64]) -> Result<Vec<Row>> {
    let init = candid::encode_args(())?;
    let mut host = Host::new(wasm, &init)?;
    // The install's timers, as the IC runs them within a second (the link secret from
    // raw_rand: without it memories wait for their ETags and creates look cheaper).
    run_timers(&mut host)?;
    // Counts past the default limit of memories per capsule (100,000).
    let most = counts.iter().max().copied().unwrap_or(0) + 2 * counts.len() as u64 + 1;
    let update = ConfigUpdate {
        max_file_size: None,
        max_capsule_bytes: None,
        max_live_sessions_per_caller: None,
        session_ttl_ns: None,
        max_capsules_per_caller: None,
        max_capsules: None,
        max_stored_bytes: None,
        directory: None,
        max_memories_per_capsule: Some(most.max(100_000)),
        max_session_records_per_caller: None,
    };
    let (r, _): (Res<UploadConfig>, _) = ok(&mut host, true, ic_host::DEFAULT_CONTROLLER, "admin_set_config", (update,), 0)?;
    must(r, "admin_set_config")?;
    let (cap, _): (Res<Capsule>, _) = ok(&mut host, true, USER, "capsules_create", (CapsuleCreateArgs { name: "scale".into() },), 0)?;
    let cap = must(cap, "capsules_create")?.id;
    // Memory 0 is public: the URL asked for right after each upgrade.
    let (public, _) = create(&mut host, memory_args(cap, 0, &[AssetKind::Thumbnail]))?;
    let (r, _): (Res<()>, _) = ok(&mut host, true, USER, "memories_set_public", (public, true), 0)?;
    must(r, "memories_set_public")?;
    let public_url = format!("/m/{public}/thumbnail");
    let (mut made, mut made4) = (1u64, 0u64);
    let mut rows = Vec::new();
    for &target in counts {
        let t = Instant::now();
        while made + made4 < target {
            create(&mut host, memory_args(cap, made + made4, &[AssetKind::Thumbnail]))?;
            made += 1;
        }
        // One more of each call at this count.
        let (last, create1) = create(&mut host, memory_args(cap, made + made4, &[AssetKind::Thumbnail]))?;
        made += 1;
        let (_, create4) = create(&mut host, memory_args(cap, made + made4, &FOUR_INLINE))?;
        made4 += 1;
        let mid = public + (last - public) / 2;
        let (m, get_msg): (Res<Memory>, Msg) = ok(&mut host, false, USER, "memories_get", (mid,), 0)?;
        must(m, "memories_get")?;
        let (p, list): (Res<MemoryPage>, Msg) = ok(&mut host, false, USER, "memories_list", (cap, Some(mid), 50u32), 0)?;
        let page = must(p, "memories_list")?;
        if page.memories.is_empty() {
            bail!("memories_list from the middle returned nothing");
        }
        let total = made + made4;
        let bytes = total.to_le_bytes().repeat(64);
        let args = BeginArgs {
            capsule_id: cap,
            size: bytes.len() as u64,
            chunk_size: None,
            sha256: None,
            mime: "image/jpeg".into(),
            name: format!("file {total}"),
            pmid: None,
            idempotency_key: None,
        };
        let (s, begin): (Res<Session>, Msg) = ok(&mut host, true, USER, "uploads_begin", (args,), 0)?;
        let session = must(s, "uploads_begin")?.id;
        let (r, _): (Res<backend::api::PutChunkOk>, Msg) =
            ok(&mut host, true, USER, "uploads_put_chunk", (session, 0u32, ByteBuf::from(bytes.clone())), 0)?;
        must(r, "uploads_put_chunk")?;
        let digest = ByteBuf::from(Sha256::digest(&bytes).to_vec());
        let (b, finish): (Res<BlobMeta>, Msg) = ok(&mut host, true, USER, "uploads_finish", (session, digest, bytes.len() as u64), 0)?;
        must(b, "uploads_finish")?;

        let (heap, stable) = heap_and_stable(&host)?;
        // The 404 of unknown URLs; the one-asset memories' URL; the 4-asset ones' 4
        // URLs; the public memory's bytes under /b/<sha256> (the blob just uploaded is
        // in no memory: not served).
        let responses = 1 + made * url_responses(1, true) + made4 * 4 * url_responses(1, true) + url_responses(1, false);
        let after = upgrade_then_get(&mut host, wasm, &public_url).map_err(|e| anyhow!("at {total} memories: {e}"))?;
        rows.push(Row {
            memories: total,
            create: create1.instructions,
            create4: create4.instructions,
            get: get_msg.instructions,
            list_page: list.instructions,
            begin: begin.instructions,
            finish: finish.instructions,
            heap,
            stable,
            responses,
            after,
        });
        eprintln!("scale: {total} memories in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(rows)
}

/// Fills a canister with memories of 4 assets over one blob of `parts` parts at the
/// minimum chunk size until it holds at least `target` certified responses.
pub fn run_full(wasm: &[u8], parts: u32, target: u64) -> Result<Full> {
    let t = Instant::now();
    let mut host = Host::new(wasm, &candid::encode_args(())?)?;
    run_timers(&mut host)?;
    let mut c = Canister::on(host)?;
    let cfg = c.config()?;
    let chunk_size = cfg.min_chunk_size;
    if let Some(max) = cfg.max_parts_per_memory {
        if 4 * u64::from(parts) > u64::from(max) {
            bail!("4 × {parts} parts is past max_parts_per_memory = {max}");
        }
    }
    let cap = c.capsule();
    let up = upload(&mut c, File::new(u64::from(parts) * u64::from(chunk_size), chunk_size, 27))?;
    eprintln!("scale: uploaded {parts} parts of {chunk_size} B in {:.1} s", t.elapsed().as_secs_f64());
    let mut host = c.host;
    // Memory 0: one public inline asset, the URL asked for after the upgrade.
    let (public, _) = create(&mut host, memory_args(cap, 0, &[AssetKind::Thumbnail]))?;
    let (r, _): (Res<()>, _) = ok(&mut host, true, USER, "memories_set_public", (public, true), 0)?;
    must(r, "memories_set_public")?;
    let mut responses = 1 + url_responses(1, true) + url_responses(1, false);
    let per_memory = FOUR_BLOB.len() as u64 * url_responses(u64::from(parts), true);
    let (mut memories, mut create_last, mut create_max, mut last) = (1u64, 0u64, 0u64, public);
    while responses < target {
        let assets = FOUR_BLOB
            .iter()
            .map(|&kind| AssetInput {
                kind,
                source: AssetSource::Blob(up.blob),
                mime: "video/mp4".into(),
                width: None,
                height: None,
                duration_ms: None,
            })
            .collect();
        let args = MemoryCreateArgs { capsule_id: cap, meta: meta(memories), assets, idempotency_key: None };
        let (id, msg) = create(&mut host, args)?;
        (last, create_last, create_max) = (id, msg.instructions, create_max.max(msg.instructions));
        memories += 1;
        responses += per_memory;
        if memories % 25 == 0 {
            eprintln!("scale: {memories} memories, {responses} responses in {:.1} s", t.elapsed().as_secs_f64());
        }
    }
    let (heap, stable) = heap_and_stable(&host)?;
    let after = upgrade_then_get(&mut host, wasm, &format!("/m/{public}/thumbnail"))?;
    // A private memory: asked by its owner (a member is let in with their identity).
    let range = get(&mut host, USER, &format!("/m/{last}/original"), &[("Range", "bytes=0-")])?;
    eprintln!("scale: {responses} certified responses in {:.1} s", t.elapsed().as_secs_f64());
    Ok(Full { memories, parts, chunk_size, target, responses, create_last, create_max, heap, stable, after, range })
}

fn m(i: u64) -> String {
    format!("{:.2} M", i as f64 / 1e6)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

fn verdict(r: &FirstRequest) -> String {
    match &r.verified {
        Ok(()) => format!("{} verified, {}", r.status, m(r.instructions)),
        Err(e) => {
            let header = if r.certificate_header { "IC-Certificate present" } else { "no IC-Certificate" };
            format!("{} NOT verified ({header}: {e}), {}", r.status, m(r.instructions))
        }
    }
}

fn passes(a: &AfterUpgrade) -> String {
    format!("{} / {} / {}", a.passes.len(), m(a.largest()), m(a.total()))
}

const COUNTS_BEGIN: &str = "<!-- scale: counts (bash scripts/bench.sh --scale) -->";
const COUNTS_END: &str = "<!-- /scale: counts -->";
const FULL_BEGIN: &str = "<!-- scale: 1 M responses (bash scripts/bench.sh --scale-responses) -->";
const FULL_END: &str = "<!-- /scale: 1 M responses -->";

const HEADER: &str = "# Scale with count

What a call costs as a capsule fills, the heap and stable memory the canister takes, and
what an upgrade costs then, up to the first `http_request` that answers a verified `200`.
Instruction counts of the embedded host (`crates/ic-host`), counted as the IC counts.
HTTP certification: a Merkle tree in stable memory (`src/storage/hash_tree.rs`), each
memory certified in the message that creates or changes it (`src/domain/http_certify.rs`).
Regenerated by `bash scripts/bench.sh --scale` (the count tables) and
`bash scripts/bench.sh --scale-responses` (the 1 M responses row); each keeps the other's
section.
";

const BEFORE: &str = "## Before (heap tree, commit e376b38)

Quoted from `bench/scale.md` as measured then: the certification was a tree on the heap,
rebuilt after each upgrade by bounded timer passes; until a pass had certified a memory its
URLs answered `503` (not measured by that bench: it ran the timers out before any request).

| memories | memories_create | memories_get | list page (50) | uploads_begin | uploads_finish | heap | stable | upgrade (install_code) | rebuild passes: count / largest / total |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| 1001 | 7.52 M | 0.80 M | 8.93 M | 0.86 M | 0.76 M | 2.2 MiB | 32.1 MiB | 4095.51 M | 3 / 5489.10 M / 5489.12 M |
| 10001 | 8.87 M | 0.82 M | 10.08 M | 0.87 M | 0.80 M | 11.5 MiB | 48.1 MiB | 4095.51 M | 21 / 10004.54 M / 66027.11 M |
| 100001 | 9.78 M | 0.84 M | 11.10 M | 0.89 M | 0.85 M | 103.6 MiB | 80.1 MiB | 4095.52 M | 237 / 10007.51 M / 784741.48 M |

No 1 M responses row was measured before.
";

pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("## Scale with count (one capsule; memories with one inline asset, one memory public)\n\n");
    s.push_str(
        "Per URL: (`memories_create` of a memory with 4 inline assets − that of one with 1) / 3, \
         the certification of one more URL of 5 responses (200, 206, 304, 403, 416) plus one \
         more asset record to encode, store and charge: an upper bound of a URL's certification \
         (the host cannot count a create with certification switched off). Certified \
         responses are computed from what was created (5 a one-asset URL, 4 the public \
         memory's `/b/<sha256>`, 1 the `404`), not read from the canister.\n\n",
    );
    s.push_str("| memories | memories_create (1 asset) | memories_create (4 assets) | certification per URL ((4 − 1) / 3) | memories_get | list page (50) | uploads_begin | uploads_finish | heap | stable | certified responses (computed) |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.memories,
            m(r.create),
            m(r.create4),
            m(r.create4.saturating_sub(r.create) / 3),
            m(r.get),
            m(r.list_page),
            m(r.begin),
            m(r.finish),
            mib(r.heap),
            mib(r.stable),
            r.responses
        );
    }
    s.push_str(
        "\n### From upgrade to the first verified 200\n\n\
         `install_code` of the same Wasm, then at once (no timer run) `GET /m/<public memory>/thumbnail` \
         as a gateway sends it, checked with `ic-response-verification` (v2, the host's root key); \
         timer messages are run only while that is not a verified 200. Then the timers are run \
         until none is due (background passes: every message they ran after the upgrade: \
         the global timer, the timers' self-call that runs a certification pass, its reply).\n\n",
    );
    s.push_str("| memories | upgrade (install_code) | first http_request: status, instructions | timer messages before the first verified 200 | background passes after the upgrade: count / largest / total |\n");
    s.push_str("|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.memories,
            m(r.after.upgrade),
            verdict(&r.after.first),
            r.after.messages_before_200,
            passes(&r.after)
        );
    }
    if let [a, .., b] = rows {
        let ratio = |x: u64, y: u64| y as f64 / x.max(1) as f64;
        let _ = writeln!(
            s,
            "\nFrom {} to {} memories ({:.0} ×): memories_create {:.2} × (4 assets: {:.2} ×), memories_get {:.2} ×, \
             list page {:.2} ×, uploads_begin {:.2} ×, uploads_finish {:.2} ×, heap {:.2} ×, stable {:.2} ×, \
             upgrade {:.2} ×, first request {:.2} ×.",
            a.memories,
            b.memories,
            b.memories as f64 / a.memories as f64,
            ratio(a.create, b.create),
            ratio(a.create4, b.create4),
            ratio(a.get, b.get),
            ratio(a.list_page, b.list_page),
            ratio(a.begin, b.begin),
            ratio(a.finish, b.finish),
            ratio(a.heap, b.heap),
            ratio(a.stable, b.stable),
            ratio(a.after.upgrade, b.after.upgrade),
            ratio(a.after.first.instructions, b.after.first.instructions),
        );
    }
    s
}

pub fn markdown_full(f: &Full) -> String {
    let title = if f.responses >= 1_000_000 { "1 M".to_string() } else { f.responses.to_string() };
    let mut s = format!("## {title} certified responses\n\n");
    let _ = writeln!(
        s,
        "One blob of {} parts at the minimum chunk size ({} B, `upload_config().min_chunk_size`), \
         then memories of 4 assets over it ({}; {} × {} = {} certified parts a memory, \
         `max_parts_per_memory` is 8,192) until the canister holds ≥ {} certified \
         responses ({} a memory: per URL the 304, 416, 403 and one 206 a part); memory 1 has \
         one public inline asset, the URL asked for after the upgrade. Responses computed, \
         as above.\n",
        f.parts,
        f.chunk_size,
        FOUR_BLOB.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", "),
        FOUR_BLOB.len(),
        f.parts,
        FOUR_BLOB.len() as u64 * u64::from(f.parts),
        f.target,
        FOUR_BLOB.len() as u64 * url_responses(u64::from(f.parts), true),
    );
    s.push_str("| memories | certified responses (computed) | memories_create (last; largest) | heap | stable | upgrade (install_code) | first http_request: status, instructions | timer messages before the first verified 200 | background passes after the upgrade: count / largest / total |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        s,
        "| {} | {} | {}; {} | {} | {} | {} | {} | {} | {} |",
        f.memories,
        f.responses,
        m(f.create_last),
        m(f.create_max),
        mib(f.heap),
        mib(f.stable),
        m(f.after.upgrade),
        verdict(&f.after.first),
        f.after.messages_before_200,
        passes(&f.after)
    );
    let _ = writeln!(
        s,
        "\nThen `Range: bytes=0-` of the last memory's original ({} parts; private, asked by its owner): {}.",
        f.parts,
        verdict(&f.range)
    );
    s
}

/// Replaces the section between `begin` and `end` of `path` (written with the fixed
/// header and the "before" figures if the file has no sections yet).
pub fn write_section(path: &Path, begin: &str, end: &str, body: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let section_of = |b: &str, e: &str| -> Option<String> {
        let i = old.find(b)?;
        let j = old[i..].find(e)? + i + e.len();
        Some(old[i..j].to_string())
    };
    let [counts, full] = [(COUNTS_BEGIN, COUNTS_END), (FULL_BEGIN, FULL_END)].map(|(b, e)| {
        if b == begin {
            Some(section.clone())
        } else {
            section_of(b, e)
        }
    });
    let mut out = format!("{HEADER}\n");
    for sec in [counts, full].into_iter().flatten() {
        out.push_str(&sec);
        out.push_str("\n\n");
    }
    out.push_str(BEFORE);
    std::fs::write(path, out)?;
    Ok(())
}

pub fn write_counts(path: &Path, md: &str) -> Result<()> {
    write_section(path, COUNTS_BEGIN, COUNTS_END, md)
}

pub fn write_full(path: &Path, md: &str) -> Result<()> {
    write_section(path, FULL_BEGIN, FULL_END, md)
}
