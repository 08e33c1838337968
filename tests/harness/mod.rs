//! Wasm-level test harness: one small trait over two ways of running the real canister
//! Wasm, the embedded host (always) and PocketIC (when `POCKET_IC_BIN` names a server),
//! plus Candid-typed helpers over it. No hand-written byte blobs: every argument is
//! encoded from the canister's own Candid types.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use backend::api::{self, BeginArgs, BlobMeta, Capsule, CapsuleCreateArgs, Error, PutChunkOk, Session, Stats};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

#[path = "../common/data.rs"]
mod data;
pub use data::{file, sha};

pub use ic_host::Reject;

pub mod http;

pub trait Backend {
    fn name(&self) -> &'static str;
    fn update(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject>;
    fn query(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject>;
    /// Upgrade to `wasm` (post_upgrade gets `()`).
    fn upgrade(&mut self, wasm: &[u8]) -> Result<(), Reject>;
    /// Advance time and let due timers run.
    fn advance_time(&mut self, d: Duration);
    /// Lower (`Some`) or restore (`None`) the update instruction limit. False when the
    /// backend cannot (PocketIC has fixed subnet limits).
    fn set_update_limit(&mut self, limit: Option<u64>) -> bool;
    /// Instructions of the last call, where the backend counts them.
    fn last_instructions(&self) -> Option<u64>;
    /// Stable-memory bytes the last call wrote (embedded host only).
    fn last_stable_writes(&self) -> Option<u64> {
        None
    }
    /// Per-method instruction figures so far (embedded host only).
    fn report(&self) -> String {
        String::new()
    }
}

/// Declares each scenario `fn name(b: &mut dyn Backend)` as tests: `embedded::name`
/// (always; prints the per-method instruction figures), `http::name` (the same host
/// behind the IC's HTTPS interface, through ic-agent) and `pocketic::name` (ignored
/// unless run with `--include-ignored`; skips with a message without `POCKET_IC_BIN`).
/// Scenarios after `; not_over_http:` skip the HTTP variant: there a caller is the
/// principal of the key that signed, so scenarios that hand principals to the canister
/// as arguments (members) cannot be reproduced as such.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => { $crate::on_every_backend!($($name),* ; not_over_http:); };
    ($($name:ident),* ; not_over_http: $($local:ident),* $(,)?) => {
        mod embedded {
            $(#[test]
            fn $name() {
                let mut b = $crate::harness::embedded();
                super::$name(&mut b);
                println!("[embedded] {}\n{}", stringify!($name), $crate::harness::Backend::report(&b));
            })*
            $(#[test]
            fn $local() {
                let mut b = $crate::harness::embedded();
                super::$local(&mut b);
                println!("[embedded] {}\n{}", stringify!($local), $crate::harness::Backend::report(&b));
            })*
        }
        mod http {
            $(#[test]
            fn $name() {
                let mut b = $crate::harness::http::http();
                super::$name(&mut b);
            })*
        }
        mod pocketic {
            $(#[test]
            #[ignore = "PocketIC: set POCKET_IC_BIN and pass --include-ignored (scripts/test.sh does)"]
            fn $name() {
                if let Some(mut b) = $crate::harness::pocketic() {
                    super::$name(&mut b);
                }
            })*
            $(#[test]
            #[ignore = "PocketIC: set POCKET_IC_BIN and pass --include-ignored (scripts/test.sh does)"]
            fn $local() {
                if let Some(mut b) = $crate::harness::pocketic() {
                    super::$local(&mut b);
                }
            })*
        }
    };
}

// ---------- the canister Wasm ----------

/// The release Wasm that `scripts/build.sh` makes (built once per test binary, so the
/// tests never run a stale canister). `KEEPSAKE_WASM` overrides the path.
pub fn canister_wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = match std::env::var_os("KEEPSAKE_WASM") {
            Some(p) => PathBuf::from(p),
            None => {
                let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
                let status = std::process::Command::new("bash")
                    .arg(root.join("scripts/build.sh"))
                    .current_dir(&root)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("run scripts/build.sh");
                assert!(status.success(), "scripts/build.sh failed");
                root.join("target/canister/backend.wasm")
            }
        };
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    })
}

// ---------- embedded host ----------

pub struct Embedded {
    pub host: ic_host::Host,
    last: Option<u64>,
    last_writes: Option<u64>,
    /// Instructions of every timer-driven message (housekeeping ticks) so far.
    pub timer_ticks: Vec<u64>,
    per_method: BTreeMap<String, (u64, u64, u64)>, // calls, total, max
}

pub fn embedded() -> Embedded {
    let host = ic_host::Host::new(canister_wasm(), &candid::encode_args(()).unwrap()).expect("install canister");
    Embedded::from_host(host)
}

impl Embedded {
    pub fn from_host(host: ic_host::Host) -> Self {
        Embedded { host, last: None, last_writes: None, timer_ticks: Vec::new(), per_method: BTreeMap::new() }
    }

    fn record(&mut self, method: &str, r: &ic_host::CallResult) {
        self.last = Some(r.instructions);
        self.last_writes = Some(r.stable_bytes_written);
        let e = self.per_method.entry(method.to_string()).or_default();
        e.0 += 1;
        e.1 += r.instructions;
        e.2 = e.2.max(r.instructions);
    }
}

impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }
    fn update(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let r = self.host.update(caller, method, &arg);
        self.record(method, &r);
        r.reply
    }
    fn query(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let r = self.host.query(caller, method, &arg);
        self.record(method, &r);
        r.reply
    }
    fn upgrade(&mut self, wasm: &[u8]) -> Result<(), Reject> {
        let cost = self.host.upgrade(wasm, &candid::encode_args(()).unwrap())?;
        self.last = Some(cost.instructions);
        Ok(())
    }
    fn advance_time(&mut self, d: Duration) {
        for r in self.host.advance_time(d) {
            let m = r.method.clone();
            if m.contains("timer_executor") {
                self.timer_ticks.push(r.instructions);
            }
            self.record(&m, &r);
        }
    }
    fn last_stable_writes(&self) -> Option<u64> {
        self.last_writes
    }
    fn set_update_limit(&mut self, limit: Option<u64>) -> bool {
        self.host.set_instruction_limit(ic_host::Limit::Update, limit.unwrap_or(40_000_000_000));
        true
    }
    fn last_instructions(&self) -> Option<u64> {
        self.last
    }
    fn report(&self) -> String {
        let mut s = String::from("  method                      calls   instructions(total)        max/call\n");
        for (m, (n, total, max)) in &self.per_method {
            s += &format!("  {m:<26} {n:>6} {total:>20} {max:>15}\n");
        }
        s
    }
}

// ---------- PocketIC ----------

pub struct Pocket {
    pic: pocket_ic::PocketIc,
    id: Principal,
}

/// A PocketIC backend, or `None` (with the reason printed) when no server is configured.
pub fn pocketic() -> Option<Pocket> {
    if std::env::var_os("POCKET_IC_BIN").is_none() {
        eprintln!("skipped on PocketIC: POCKET_IC_BIN is not set (point it at a PocketIC server binary to run this suite there too)");
        return None;
    }
    let pic = pocket_ic::PocketIcBuilder::new().with_application_subnet().build();
    let id = pic.create_canister_with_settings(Some(controller()), None);
    pic.add_cycles(id, 100_000_000_000_000);
    pic.install_canister(id, canister_wasm().to_vec(), candid::encode_args(()).unwrap(), Some(controller()));
    Some(Pocket { pic, id })
}

fn pocket_reject(r: pocket_ic::RejectResponse) -> Reject {
    Reject::new(r.reject_code as u32, r.reject_message)
}

impl Backend for Pocket {
    fn name(&self) -> &'static str {
        "pocketic"
    }
    fn update(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        self.pic.update_call(self.id, caller, method, arg).map_err(pocket_reject)
    }
    fn query(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        self.pic.query_call(self.id, caller, method, arg).map_err(pocket_reject)
    }
    fn upgrade(&mut self, wasm: &[u8]) -> Result<(), Reject> {
        self.pic
            .upgrade_canister(self.id, wasm.to_vec(), candid::encode_args(()).unwrap(), Some(controller()))
            .map_err(pocket_reject)
    }
    fn advance_time(&mut self, d: Duration) {
        self.pic.advance_time(d);
        for _ in 0..5 {
            self.pic.tick();
        }
    }
    fn set_update_limit(&mut self, _limit: Option<u64>) -> bool {
        false
    }
    fn last_instructions(&self) -> Option<u64> {
        None
    }
}

// ---------- principals and data ----------

pub fn controller() -> Principal {
    ic_host::DEFAULT_CONTROLLER
}

pub fn user(n: u8) -> Principal {
    Principal::from_slice(&[0x10, n, 0x77, 0x01])
}


// ---------- typed calls ----------

impl dyn Backend + '_ {
    pub fn try_update<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
        &mut self,
        caller: Principal,
        method: &str,
        args: A,
    ) -> Result<R, Reject> {
        let bytes = self.update(caller, method, candid::encode_args(args).expect("encode"))?;
        Ok(candid::decode_one(&bytes).unwrap_or_else(|e| panic!("decode reply of {method}: {e}")))
    }

    pub fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(&mut self, caller: Principal, method: &str, args: A) -> R {
        self.try_update(caller, method, args).unwrap_or_else(|r| panic!("{method} rejected: {} {}", r.code, r.message))
    }

    pub fn q<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(&mut self, caller: Principal, method: &str, args: A) -> R {
        let bytes = self
            .query(caller, method, candid::encode_args(args).expect("encode"))
            .unwrap_or_else(|r| panic!("{method} rejected: {} {}", r.code, r.message));
        candid::decode_one(&bytes).unwrap_or_else(|e| panic!("decode reply of {method}: {e}"))
    }

    pub fn capsule(&mut self, owner: Principal) -> u64 {
        let r: api::Result<Capsule> = self.call(owner, "capsules_create", (CapsuleCreateArgs { name: "family".into() },));
        r.expect("capsules_create").id
    }

    pub fn begin(&mut self, who: Principal, capsule_id: u64, size: usize, pmid: Option<&str>) -> Session {
        self.begin_chunked(who, capsule_id, size, pmid, None)
    }

    pub fn begin_chunked(
        &mut self,
        who: Principal,
        capsule_id: u64,
        size: usize,
        pmid: Option<&str>,
        chunk_size: Option<u32>,
    ) -> Session {
        let args = BeginArgs {
            capsule_id,
            size: size as u64,
            chunk_size,
            sha256: None,
            mime: "application/octet-stream".into(),
            name: "file.bin".into(),
            pmid: pmid.map(str::to_string),
            idempotency_key: None,
        };
        let r: api::Result<Session> = self.call(who, "uploads_begin", (args,));
        r.expect("uploads_begin")
    }

    pub fn put(&mut self, who: Principal, s: &Session, idx: u32, data: &[u8]) -> api::Result<PutChunkOk> {
        let cs = s.chunk_size as usize;
        let start = idx as usize * cs;
        let bytes = ByteBuf::from(data[start..(start + cs).min(data.len())].to_vec());
        self.call(who, "uploads_put_chunk", (s.id, idx, bytes))
    }

    /// Finish, calling again while the rolling hash catches up. Returns the blob and how
    /// many finish calls it took.
    pub fn finish(&mut self, who: Principal, s: &Session, data: &[u8]) -> (api::Result<BlobMeta>, u32) {
        for calls in 1..=s.chunk_count + 1 {
            let r: api::Result<BlobMeta> =
                self.call(who, "uploads_finish", (s.id, ByteBuf::from(sha(data)), data.len() as u64));
            if !matches!(r, Err(Error::InProgress(_))) {
                return (r, calls);
            }
        }
        panic!("finish never completed");
    }

    /// A whole upload, chunks in order.
    pub fn upload(&mut self, who: Principal, capsule_id: u64, data: &[u8], pmid: Option<&str>) -> BlobMeta {
        let s = self.begin(who, capsule_id, data.len(), pmid);
        for i in 0..s.chunk_count {
            self.put(who, &s, i, data).expect("put");
        }
        self.finish(who, &s, data).0.expect("finish")
    }

    pub fn read_blob(&mut self, who: Principal, blob: &BlobMeta) -> Vec<u8> {
        let mut out = Vec::with_capacity(blob.size as usize);
        for i in 0..blob.chunk_count {
            let r: api::Result<ByteBuf> = self.q(who, "blobs_read_chunk", (blob.id, i));
            out.extend_from_slice(&r.expect("blobs_read_chunk"));
        }
        out
    }

    pub fn status(&mut self, who: Principal, session_id: u64) -> api::Result<Session> {
        self.q(who, "uploads_status", (session_id,))
    }

    pub fn stats(&mut self) -> Stats {
        self.q(controller(), "stats", ())
    }
}

// ---------- images ----------

/// A photo-like JPEG (gradients plus texture), `w` x `h`.
pub fn photo(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        let n = ((x * 7919 + y * 104_729) % 61) as u8;
        image::Rgb([(x / 12) as u8 ^ n, (y / 8) as u8, (((x + y) / 20) as u8).wrapping_add(n)])
    }))
}

pub fn jpeg_bytes(img: &image::DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("encode jpeg");
    out.into_inner()
}

/// Fit inside `max` x `max`, keeping the aspect ratio.
pub fn fit(img: &image::DynamicImage, max: u32) -> image::DynamicImage {
    img.resize(max, max, image::imageops::FilterType::Triangle)
}
