//! Helpers for the native domain tests: the real domain logic over an in-memory stable
//! memory that counts what is written and read.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use backend::api::{BeginArgs, BlobMeta, CapsuleCreateArgs, Error, Session};
use backend::domain::{Ctx, State};
use candid::Principal;
use ic_stable_structures::Memory;
use serde_bytes::ByteBuf;

#[path = "data.rs"]
mod data;
#[allow(unused_imports)]
pub use data::{file, sha};

pub const MB: usize = 1_000_000;
pub const CHUNK: u32 = 1_800_000;
pub const T0: u64 = 1_700_000_000_000_000_000;

const PAGE: usize = 65_536;

/// A sparse in-memory stable memory (pages exist once written, so the memory manager's
/// 8 MiB buckets cost nothing until used) that counts bytes written and read; clones
/// share memory and counters.
#[derive(Clone, Default)]
pub struct CountingMemory {
    pages: Rc<RefCell<BTreeMap<u64, Box<[u8]>>>>,
    size: Rc<Cell<u64>>,
    pub written: Rc<Cell<u64>>,
    pub read: Rc<Cell<u64>>,
}

/// The contents of a `CountingMemory`: its size and its pages that are not all zero.
#[derive(PartialEq, Eq, Debug)]
pub struct Snapshot(u64, BTreeMap<u64, Vec<u8>>);

impl CountingMemory {
    pub fn snapshot(&self) -> Snapshot {
        let pages = self.pages.borrow().iter().filter(|(_, p)| p.iter().any(|b| *b != 0)).map(|(i, p)| (*i, p.to_vec())).collect();
        Snapshot(self.size.get(), pages)
    }
    pub fn reset(&self) {
        self.written.set(0);
        self.read.set(0);
    }
    /// Calls `f(page, offset in page, pos in buffer, len)` for each page `[offset,
    /// offset+len)` touches.
    fn segments(offset: u64, len: usize, mut f: impl FnMut(u64, usize, usize, usize)) {
        let mut pos = 0;
        while pos < len {
            let at = offset + pos as u64;
            let (page, within) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let n = (PAGE - within).min(len - pos);
            f(page, within, pos, n);
            pos += n;
        }
    }
    fn check(&self, offset: u64, len: usize) {
        let end = offset.checked_add(len as u64).expect("offset overflow");
        assert!(end <= self.size.get() * PAGE as u64, "out of bounds: {offset}+{len} > {} pages", self.size.get());
    }
}

impl Memory for CountingMemory {
    fn size(&self) -> u64 {
        self.size.get()
    }
    fn grow(&self, pages: u64) -> i64 {
        let old = self.size.get();
        self.size.set(old + pages);
        old as i64
    }
    fn read(&self, offset: u64, dst: &mut [u8]) {
        self.check(offset, dst.len());
        self.read.set(self.read.get() + dst.len() as u64);
        let pages = self.pages.borrow();
        Self::segments(offset, dst.len(), |page, within, pos, n| match pages.get(&page) {
            Some(p) => dst[pos..pos + n].copy_from_slice(&p[within..within + n]),
            None => dst[pos..pos + n].fill(0),
        });
    }
    unsafe fn read_unsafe(&self, offset: u64, dst: *mut u8, count: usize) {
        self.check(offset, count);
        self.read.set(self.read.get() + count as u64);
        let pages = self.pages.borrow();
        Self::segments(offset, count, |page, within, pos, n| unsafe {
            match pages.get(&page) {
                Some(p) => std::ptr::copy_nonoverlapping(p[within..].as_ptr(), dst.add(pos), n),
                None => std::ptr::write_bytes(dst.add(pos), 0, n),
            }
        });
    }
    fn write(&self, offset: u64, src: &[u8]) {
        self.check(offset, src.len());
        self.written.set(self.written.get() + src.len() as u64);
        let mut pages = self.pages.borrow_mut();
        Self::segments(offset, src.len(), |page, within, pos, n| {
            let p = pages.entry(page).or_insert_with(|| vec![0u8; PAGE].into_boxed_slice());
            p[within..within + n].copy_from_slice(&src[pos..pos + n]);
        });
    }
}

pub fn user(n: u8) -> Principal {
    Principal::from_slice(&[n, 0xab, 0xcd, 1])
}

pub fn ctx(p: Principal, now: u64) -> Ctx {
    Ctx { caller: p, now, is_controller: false }
}


pub struct World {
    pub mem: CountingMemory,
    pub state: State<CountingMemory>,
    pub now: u64,
}

impl World {
    pub fn new() -> Self {
        let mem = CountingMemory::default();
        let state = State::open(mem.clone()).expect("open fresh state");
        World { mem, state, now: T0 }
    }

    /// What an upgrade does: heap state gone, the same stable memory opened again.
    pub fn upgrade(&mut self) {
        self.state = State::open(self.mem.clone()).expect("reopen state");
    }

    pub fn ctx(&self, p: Principal) -> Ctx {
        ctx(p, self.now)
    }

    pub fn capsule(&mut self, owner: Principal) -> u64 {
        let c = self.ctx(owner);
        self.state.capsules_create(&c, CapsuleCreateArgs { name: "photos".into() }).expect("create capsule").id
    }

    pub fn begin(&mut self, who: Principal, capsule_id: u64, size: usize, pmid: Option<&str>) -> Session {
        let c = self.ctx(who);
        self.state.uploads_begin(&c, begin_args(capsule_id, size as u64, pmid)).expect("begin")
    }

    pub fn put(&mut self, who: Principal, s: &Session, idx: u32, data: &[u8]) -> Result<backend::api::PutChunkOk, Error> {
        let c = self.ctx(who);
        self.state.uploads_put_chunk(&c, s.id, idx, chunk_of(s, idx, data))
    }

    /// Finish, calling again while the hash catches up (at most chunk_count times).
    pub fn finish(&mut self, who: Principal, s: &Session, digest: &[u8], len: usize) -> Result<BlobMeta, Error> {
        let c = self.ctx(who);
        for _ in 0..=s.chunk_count {
            match self.state.uploads_finish(&c, s.id, digest, len as u64) {
                Err(Error::InProgress(_)) => continue,
                other => return other,
            }
        }
        panic!("finish never completed");
    }

    pub fn read_all(&self, who: Principal, blob: &BlobMeta) -> Vec<u8> {
        let c = self.ctx(who);
        let mut out = Vec::new();
        for i in 0..blob.chunk_count {
            out.extend(self.state.blobs_read_chunk(&c, blob.id, i).expect("read chunk"));
        }
        out
    }
}

pub fn begin_args(capsule_id: u64, size: u64, pmid: Option<&str>) -> BeginArgs {
    BeginArgs {
        capsule_id,
        size,
        chunk_size: Some(CHUNK),
        sha256: None,
        mime: "application/octet-stream".into(),
        name: "file.bin".into(),
        pmid: pmid.map(str::to_string),
        idempotency_key: None,
    }
}

pub fn chunk_of<'a>(s: &Session, idx: u32, data: &'a [u8]) -> &'a [u8] {
    let cs = s.chunk_size as usize;
    let start = idx as usize * cs;
    &data[start..(start + cs).min(data.len())]
}

pub fn digest_buf(d: &[u8]) -> ByteBuf {
    ByteBuf::from(d.to_vec())
}

/// Every method of the service in `backend.did` (as the canister exports it) with whether
/// it is a query, sorted by name: the list that hand-kept method lists are checked against.
pub fn did_methods() -> Vec<(String, bool)> {
    use candid::types::{FuncMode, TypeInner};
    use candid_parser::utils::CandidSource;
    let did = backend::candid_interface();
    let (env, actor) = CandidSource::Text(&did).load().expect("backend.did parses");
    let actor = actor.expect("backend.did has a service");
    let service = match env.trace_type(&actor).unwrap().as_ref() {
        TypeInner::Class(_, s) => s.clone(),
        _ => actor,
    };
    let TypeInner::Service(methods) = env.trace_type(&service).unwrap().as_ref().clone() else { panic!("not a service") };
    let mut out: Vec<(String, bool)> = methods
        .iter()
        .map(|(name, ty)| (name.clone(), env.as_func(ty).unwrap().modes.iter().any(|m| matches!(m, FuncMode::Query))))
        .collect();
    out.sort();
    out
}
