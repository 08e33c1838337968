//! Model-based property test: random interleavings of uploads (begin, put shuffled,
//! duplicated and conflicting, finish, abort, dedup), membership (invite, accept, role
//! changes, removal, leaving), capsules, memories, blob deletion, quotas, time passing
//! with housekeeping, and upgrades, by five callers (one a controller), checked step
//! by step against a simple model of the rules: every reply's kind, every counter, every
//! capsule's members and bytes. Every refused call must write nothing to stable memory.
//!
//! `MODEL_CASES` sets the number of interleavings (default 10,000: ~1 min in CI).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use backend::api::{self, BeginArgs, ConfigUpdate, Error, Role};
use backend::domain::records::{memory_charge, DEFAULT_MAX_SESSION_RECORDS_PER_CALLER};
use backend::domain::Ctx;
use candid::Principal;
use common::*;
use proptest::prelude::*;
use serde_bytes::ByteBuf;

const CS: usize = 64 * 1024; // the smallest chunk size keeps cases fast
const TTL_S: u64 = 60;
const MAX_LIVE: u32 = 3;
const CAPS_PER_CALLER: u32 = 3;
const CONTROLLER: usize = 4;
const WHO: usize = 5;

#[derive(Clone, Debug)]
enum Op {
    Begin { who: usize, cap: usize, chunks: usize, tail: usize, declare: bool },
    BeginDup { who: usize, blob: usize, declare: bool },
    Put { slot: usize, idx: u32, corrupt: bool, who: Option<usize> },
    Finish { slot: usize, right: bool, who: Option<usize> },
    Abort { slot: usize, who: usize },
    SetMember { by: usize, cap: usize, who: usize, role: Role },
    Accept { who: usize, cap: usize },
    Remove { by: usize, cap: usize, who: usize },
    CreateCapsule { who: usize },
    Attach { who: usize, blob: usize },
    DeleteMemory { who: usize, mem: usize },
    DeleteBlob { who: usize, blob: usize },
    /// Time passes; with `gc`, housekeeping runs until done.
    Advance { secs: u64, gc: bool },
    SetQuota { bytes: u64 },
    Upgrade,
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Reader), Just(Role::Writer), Just(Role::Owner)]
}

/// A capsule index: mostly the first capsules (two exist from the start), sometimes
/// one that does not exist.
fn cap() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0usize..2, 3 => 2usize..4, 1 => 4usize..8]
}

/// An acting principal: mostly the capsules' creators (0 and 1) or the controller.
fn actor() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0usize..2, 2 => Just(CONTROLLER), 3 => 0..WHO]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..WHO;
    prop_oneof![
        4 => (who.clone(), cap(), 1usize..=3, 1usize..=CS, prop::bool::weighted(0.3))
            .prop_map(|(who, cap, chunks, tail, declare)| Op::Begin { who, cap, chunks, tail, declare }),
        1 => (who.clone(), 0usize..8, any::<bool>()).prop_map(|(who, blob, declare)| Op::BeginDup { who, blob, declare }),
        10 => (0usize..16, 0u32..3, prop::bool::weighted(0.15), prop::option::weighted(0.1, who.clone()))
            .prop_map(|(slot, idx, corrupt, who)| Op::Put { slot, idx, corrupt, who }),
        3 => (0usize..16, prop::bool::weighted(0.85), prop::option::weighted(0.1, who.clone()))
            .prop_map(|(slot, right, who)| Op::Finish { slot, right, who }),
        1 => (0usize..16, who.clone()).prop_map(|(slot, who)| Op::Abort { slot, who }),
        3 => (actor(), cap(), who.clone(), role()).prop_map(|(by, cap, who, role)| Op::SetMember { by, cap, who, role }),
        4 => (who.clone(), cap()).prop_map(|(who, cap)| Op::Accept { who, cap }),
        2 => (prop_oneof![actor(), 2usize..WHO], cap(), 2usize..WHO).prop_map(|(by, cap, who)| Op::Remove { by, cap, who }),
        1 => who.clone().prop_map(|who| Op::CreateCapsule { who }),
        2 => (who.clone(), 0usize..8).prop_map(|(who, blob)| Op::Attach { who, blob }),
        1 => (who.clone(), 0usize..8).prop_map(|(who, mem)| Op::DeleteMemory { who, mem }),
        1 => (who.clone(), 0usize..8).prop_map(|(who, blob)| Op::DeleteBlob { who, blob }),
        2 => (0u64..100, prop::bool::weighted(0.6)).prop_map(|(secs, gc)| Op::Advance { secs, gc }),
        1 => (100_000u64..800_000).prop_map(|bytes| Op::SetQuota { bytes }),
        1 => Just(Op::Upgrade),
    ]
}

// ---------- the model ----------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ok,
    NotFound,
    Unauthorized,
    Conflict,
    QuotaExceeded,
    InvalidArgument,
    ChecksumMismatch,
    Expired,
}

fn kind<T>(r: &api::Result<T>) -> Kind {
    match r {
        Ok(_) => Kind::Ok,
        Err(Error::NotFound(_)) => Kind::NotFound,
        Err(Error::Unauthorized(_)) => Kind::Unauthorized,
        Err(Error::Conflict(_)) => Kind::Conflict,
        Err(Error::QuotaExceeded(_)) => Kind::QuotaExceeded,
        Err(Error::InvalidArgument(_)) => Kind::InvalidArgument,
        Err(Error::ChecksumMismatch(_)) => Kind::ChecksumMismatch,
        Err(Error::Expired(_)) => Kind::Expired,
        Err(Error::InProgress(m)) => panic!("InProgress with at most 3 chunks: {m}"),
    }
}

struct MCapsule {
    id: u64,
    members: BTreeMap<usize, Role>,
    invited: BTreeMap<usize, Role>,
    used: u64,
    reserved: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Open,
    Finished(u64),
    Aborted,
}

struct MSession {
    id: u64,
    cap: u64,
    owner: usize,
    data: Vec<u8>,
    declared: bool,
    received: BTreeSet<u32>,
    phase: Phase,
    expires: u64,
    /// Housekeeping dropped the record.
    gone: bool,
}

impl MSession {
    fn chunks(&self) -> u32 {
        self.data.len().div_ceil(CS) as u32
    }
    fn chunk(&self, idx: u32) -> &[u8] {
        let start = idx as usize * CS;
        &self.data[start..(start + CS).min(self.data.len())]
    }
}

struct MBlob {
    id: u64,
    cap: u64,
    data_sha: Vec<u8>,
    size: u64,
    refs: u32,
    data: Vec<u8>,
}

struct Model {
    caps: Vec<MCapsule>,
    sessions: Vec<MSession>,
    blobs: Vec<MBlob>,
    memories: Vec<(u64, u64, u64, u64)>, // memory, capsule, blob, bytes charged
    created: [u32; WHO],
    finished: BTreeMap<u64, u64>,
    max_capsule_bytes: u64,
    now: u64,
}

impl Model {
    fn cap(&self, id: u64) -> Option<&MCapsule> {
        self.caps.iter().find(|c| c.id == id)
    }
    fn cap_mut(&mut self, id: u64) -> &mut MCapsule {
        self.caps.iter_mut().find(|c| c.id == id).expect("model capsule")
    }
    fn role(&self, who: usize, cap: u64) -> Option<Role> {
        let c = self.cap(cap)?;
        if who == CONTROLLER {
            return Some(Role::Owner);
        }
        c.members.get(&who).copied()
    }
    /// `require_role`: NotFound for non-members, Unauthorized below `min`.
    fn require(&self, who: usize, cap: u64, min: Role) -> Result<(), Kind> {
        match self.role(who, cap) {
            None => Err(Kind::NotFound),
            Some(r) if r < min => Err(Kind::Unauthorized),
            Some(_) => Ok(()),
        }
    }
    fn visible(&self, who: usize, s: &MSession) -> bool {
        match self.role(who, s.cap) {
            Some(Role::Owner) => true,
            Some(_) => s.owner == who,
            None => false,
        }
    }
    fn live(&self, who: usize) -> usize {
        self.sessions.iter().filter(|s| s.owner == who && !s.gone && s.phase == Phase::Open && self.now < s.expires).count()
    }
    /// Session records `who` holds in any state, until housekeeping drops them. (The
    /// bound, 1,000, is out of reach of 40 steps: wasm_sessions_bound reaches it.)
    fn records(&self, who: usize) -> usize {
        self.sessions.iter().filter(|s| s.owner == who && !s.gone).count()
    }
    fn blob_of(&self, id: u64) -> Option<&MBlob> {
        self.blobs.iter().find(|b| b.id == id)
    }
    fn dedup(&self, cap: u64, sha: &[u8], size: u64) -> Option<u64> {
        self.blobs.iter().find(|b| b.cap == cap && b.data_sha == sha && b.size == size).map(|b| b.id)
    }
    /// An open session ends (abort, revocation, expiry): its reservation goes back.
    fn end(&mut self, slot: usize, phase: Phase, keep: bool) {
        let (cap, size) = (self.sessions[slot].cap, self.sessions[slot].data.len() as u64);
        self.cap_mut(cap).reserved -= size;
        let now = self.now;
        let s = &mut self.sessions[slot];
        s.phase = phase;
        if keep {
            s.expires = now + TTL_S * 1_000_000_000;
        } else {
            s.gone = true;
        }
    }
    /// `who` can no longer write in `cap`: their open sessions there are aborted.
    fn revoke(&mut self, cap: u64, who: usize) {
        for i in 0..self.sessions.len() {
            let s = &self.sessions[i];
            if s.cap == cap && s.owner == who && !s.gone && s.phase == Phase::Open {
                self.end(i, Phase::Aborted, true);
            }
        }
    }
    fn free_blob(&mut self, id: u64) {
        let pos = self.blobs.iter().position(|b| b.id == id).unwrap();
        let b = self.blobs.remove(pos);
        self.cap_mut(b.cap).used -= b.size;
    }
    /// Housekeeping after time passed: records past their expiry are dropped.
    fn expire(&mut self) {
        for i in 0..self.sessions.len() {
            let s = &self.sessions[i];
            if !s.gone && self.now >= s.expires {
                if s.phase == Phase::Open {
                    self.end(i, Phase::Aborted, false);
                } else {
                    self.sessions[i].gone = true;
                }
            }
        }
    }
}

struct Run {
    w: World,
    m: Model,
}

fn ctx_of(who: usize, now: u64) -> Ctx {
    if who == CONTROLLER {
        Ctx { caller: user(200), now, is_controller: true }
    } else {
        ctx(user(who as u8 + 1), now)
    }
}

fn principal(who: usize) -> Principal {
    if who == CONTROLLER {
        user(200)
    } else {
        user(who as u8 + 1)
    }
}

impl Run {
    fn new() -> Self {
        let mut w = World::new();
        let admin = ctx_of(CONTROLLER, w.now);
        let update = ConfigUpdate {
            session_ttl_ns: Some(TTL_S * 1_000_000_000),
            max_live_sessions_per_caller: Some(MAX_LIVE),
            max_capsules_per_caller: Some(CAPS_PER_CALLER),
            max_capsule_bytes: Some(600_000),
            ..Default::default()
        };
        w.state.admin_set_config(&admin, update).unwrap();
        let now = w.now;
        let mut m = Model {
            caps: vec![],
            sessions: vec![],
            blobs: vec![],
            memories: vec![],
            created: [0; WHO],
            finished: BTreeMap::new(),
            max_capsule_bytes: 600_000,
            now,
        };
        for who in [0, 1] {
            let id = w.capsule(principal(who));
            m.created[who] += 1;
            m.caps.push(MCapsule { id, members: [(who, Role::Owner)].into(), invited: BTreeMap::new(), used: 0, reserved: 0 });
        }
        Run { w, m }
    }

    fn ctx(&self, who: usize) -> Ctx {
        ctx_of(who, self.w.now)
    }

    fn cap_id(&self, i: usize) -> u64 {
        // an index past the capsules names one that does not exist
        self.m.caps.get(i).map_or(1000 + i as u64, |c| c.id)
    }

    /// Runs one op on the canister and the model; returns (expected, got).
    fn step(&mut self, op: Op, seed: u64) -> (Kind, Kind) {
        match op {
            Op::Begin { who, cap, chunks, tail, declare } => {
                let size = (chunks - 1) * CS + tail;
                let cap = self.cap_id(cap);
                self.begin(who, cap, file(size, seed), declare)
            }
            Op::BeginDup { who, blob, declare } => {
                let Some(b) = self.m.blobs.get(blob % self.m.blobs.len().max(1)) else { return (Kind::Ok, Kind::Ok) };
                let (cap, data) = (b.cap, b.data.clone());
                self.begin(who, cap, data, declare)
            }
            Op::Put { slot, idx, corrupt, who } => {
                let Some(i) = self.slot(slot) else { return (Kind::Ok, Kind::Ok) };
                let s = &self.m.sessions[i];
                let who = who.unwrap_or(s.owner);
                let idx = idx % s.chunks();
                let mut bytes = s.chunk(idx).to_vec();
                let conflicting = corrupt && s.received.contains(&idx);
                if conflicting {
                    bytes[0] ^= 0xff;
                }
                let want = if s.gone || !self.m.visible(who, s) {
                    Kind::NotFound
                } else if s.owner != who || self.m.role(who, s.cap) < Some(Role::Writer) {
                    Kind::Unauthorized
                } else if s.phase != Phase::Open {
                    Kind::Conflict
                } else if self.m.now >= s.expires {
                    Kind::Expired
                } else if conflicting {
                    Kind::Conflict
                } else {
                    Kind::Ok
                };
                let r = self.w.state.uploads_put_chunk(&self.ctx(who), s.id, idx, &bytes);
                if let (Kind::Ok, Ok(ok)) = (want, &r) {
                    let s = &mut self.m.sessions[i];
                    assert_eq!(ok.stored, s.received.insert(idx), "stored flag");
                    if ok.stored {
                        s.expires = self.m.now + TTL_S * 1_000_000_000;
                    }
                }
                (want, kind(&r))
            }
            Op::Finish { slot, right, who } => {
                let Some(i) = self.slot(slot) else { return (Kind::Ok, Kind::Ok) };
                let s = &self.m.sessions[i];
                let who = who.unwrap_or(s.owner);
                let digest = if right { sha(&s.data) } else { sha(b"wrong") };
                let sid = s.id;
                let want = self.finish_expectation(i, who, right);
                let r = self.w.state.uploads_finish(&self.ctx(who), sid, &digest, self.m.sessions[i].data.len() as u64);
                if let (Kind::Ok, Ok(blob)) = (want, &r) {
                    self.finished_ok(i, blob);
                }
                (want, kind(&r))
            }
            Op::Abort { slot, who } => {
                let Some(i) = self.slot(slot) else { return (Kind::Ok, Kind::Ok) };
                let s = &self.m.sessions[i];
                let want = if s.gone || !self.m.visible(who, s) {
                    Kind::NotFound
                } else {
                    match s.phase {
                        Phase::Finished(_) => Kind::Conflict,
                        Phase::Aborted => Kind::Ok,
                        Phase::Open => {
                            self.m.end(i, Phase::Aborted, true);
                            Kind::Ok
                        }
                    }
                };
                let r = self.w.state.uploads_abort(&self.ctx(who), self.m.sessions[i].id);
                (want, kind(&r))
            }
            Op::SetMember { by, cap, who, role } => {
                let cap = self.cap_id(cap);
                let want = match self.m.require(by, cap, Role::Owner) {
                    Err(k) => k,
                    Ok(()) => {
                        let c = self.m.cap(cap).unwrap();
                        if c.members.contains_key(&who) {
                            let owners: Vec<usize> = c.members.iter().filter(|(_, r)| **r == Role::Owner).map(|(p, _)| *p).collect();
                            if role != Role::Owner && owners == [who] {
                                Kind::Conflict
                            } else {
                                self.m.cap_mut(cap).members.insert(who, role);
                                if role < Role::Writer {
                                    self.m.revoke(cap, who);
                                }
                                Kind::Ok
                            }
                        } else {
                            self.m.cap_mut(cap).invited.insert(who, role);
                            Kind::Ok
                        }
                    }
                };
                let r = self.w.state.capsules_set_member(&self.ctx(by), cap, principal(who), role);
                (want, kind(&r))
            }
            Op::Accept { who, cap } => {
                let cap = self.cap_id(cap);
                let want = match self.m.cap(cap) {
                    None => Kind::NotFound,
                    Some(c) if c.members.contains_key(&who) => Kind::Ok,
                    Some(c) => match c.invited.get(&who).copied() {
                        Some(role) => {
                            let c = self.m.cap_mut(cap);
                            c.invited.remove(&who);
                            c.members.insert(who, role);
                            Kind::Ok
                        }
                        None => Kind::NotFound,
                    },
                };
                let r = self.w.state.capsules_accept(&self.ctx(who), cap);
                (want, kind(&r))
            }
            Op::Remove { by, cap, who } => {
                let cap = self.cap_id(cap);
                let invited = self.m.cap(cap).is_some_and(|c| c.invited.contains_key(&who));
                let check = if who == by && invited {
                    Ok(())
                } else {
                    self.m.require(by, cap, if who == by { Role::Reader } else { Role::Owner })
                };
                let want = match check {
                    Err(k) => k,
                    Ok(()) if invited => {
                        self.m.cap_mut(cap).invited.remove(&who);
                        Kind::Ok
                    }
                    Ok(()) => {
                        let c = self.m.cap(cap).unwrap();
                        let owners: Vec<usize> = c.members.iter().filter(|(_, r)| **r == Role::Owner).map(|(p, _)| *p).collect();
                        if !c.members.contains_key(&who) {
                            Kind::NotFound
                        } else if owners == [who] {
                            Kind::Conflict
                        } else {
                            self.m.cap_mut(cap).members.remove(&who);
                            self.m.revoke(cap, who);
                            Kind::Ok
                        }
                    }
                };
                let r = self.w.state.capsules_remove_member(&self.ctx(by), cap, principal(who));
                (want, kind(&r))
            }
            Op::CreateCapsule { who } => {
                let want = if who != CONTROLLER && self.m.created[who] >= CAPS_PER_CALLER {
                    Kind::QuotaExceeded
                } else {
                    Kind::Ok
                };
                let r = self.w.state.capsules_create(&self.ctx(who), api::CapsuleCreateArgs { name: "c".into() });
                if let Ok(c) = &r {
                    self.m.created[who] += 1;
                    let members = [(who, Role::Owner)].into();
                    self.m.caps.push(MCapsule { id: c.id, members, invited: BTreeMap::new(), used: 0, reserved: 0 });
                }
                (want, kind(&r))
            }
            Op::Attach { who, blob } => {
                let Some(b) = self.m.blobs.get(blob % self.m.blobs.len().max(1)) else { return (Kind::Ok, Kind::Ok) };
                let (id, cap) = (b.id, b.cap);
                let meta = api::MemoryMeta { title: "m".into(), kind: api::MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
                // a memory is charged its record and certified responses (issue 27)
                let charge = memory_charge(&meta, [("image/jpeg", b.size.div_ceil(CS as u64) as u32)]);
                let want = match self.m.require(who, cap, Role::Writer) {
                    Err(k) => k,
                    Ok(()) => {
                        let c = self.m.cap(cap).unwrap();
                        if c.used + c.reserved + charge > self.m.max_capsule_bytes {
                            Kind::QuotaExceeded
                        } else {
                            Kind::Ok
                        }
                    }
                };
                let args = api::MemoryCreateArgs {
                    capsule_id: cap,
                    meta,
                    assets: vec![api::AssetInput {
                        kind: api::AssetKind::Original,
                        source: api::AssetSource::Blob(id),
                        mime: "image/jpeg".into(),
                        width: None,
                        height: None,
                        duration_ms: None,
                    }],
                    idempotency_key: None,
                };
                let r = self.w.state.memories_create(&self.ctx(who), args);
                if let Ok(mem) = &r {
                    self.m.memories.push((mem.id, cap, id, charge));
                    self.m.cap_mut(cap).used += charge;
                    self.m.blobs.iter_mut().find(|b| b.id == id).unwrap().refs += 1;
                }
                (want, kind(&r))
            }
            Op::DeleteMemory { who, mem } => {
                if self.m.memories.is_empty() {
                    return (Kind::Ok, Kind::Ok);
                }
                let (id, cap, blob, charge) = self.m.memories[mem % self.m.memories.len()];
                let want = match self.m.require(who, cap, Role::Writer) {
                    Err(k) => k,
                    Ok(()) => Kind::Ok,
                };
                let r = self.w.state.memories_delete(&self.ctx(who), id);
                if r.is_ok() {
                    self.m.memories.retain(|m| m.0 != id);
                    self.m.cap_mut(cap).used -= charge;
                    let b = self.m.blobs.iter_mut().find(|b| b.id == blob).unwrap();
                    b.refs -= 1;
                    if b.refs == 0 {
                        self.m.free_blob(blob);
                    }
                }
                (want, kind(&r))
            }
            Op::DeleteBlob { who, blob } => {
                let Some(b) = self.m.blobs.get(blob % self.m.blobs.len().max(1)) else { return (Kind::Ok, Kind::Ok) };
                let (id, cap, refs) = (b.id, b.cap, b.refs);
                let want = match self.m.require(who, cap, Role::Writer) {
                    Err(k) => k,
                    Ok(()) if refs > 0 => Kind::Conflict,
                    Ok(()) => Kind::Ok,
                };
                let r = self.w.state.blobs_delete(&self.ctx(who), id);
                if r.is_ok() {
                    self.m.free_blob(id);
                }
                (want, kind(&r))
            }
            Op::Advance { secs, gc } => {
                self.w.now += secs * 1_000_000_000;
                self.m.now = self.w.now;
                if gc {
                    while self.w.state.gc_pass(self.w.now).more {}
                    self.m.expire();
                    assert_eq!(self.w.state.stats().gc_pending_bytes, 0, "housekeeping freed everything");
                }
                (Kind::Ok, Kind::Ok)
            }
            Op::SetQuota { bytes } => {
                self.m.max_capsule_bytes = bytes;
                let r = self.w.state.admin_set_config(&self.ctx(CONTROLLER), ConfigUpdate { max_capsule_bytes: Some(bytes), ..Default::default() });
                (Kind::Ok, kind(&r))
            }
            Op::Upgrade => {
                self.w.upgrade();
                (Kind::Ok, Kind::Ok)
            }
        }
    }

    fn slot(&self, slot: usize) -> Option<usize> {
        (!self.m.sessions.is_empty()).then(|| slot % self.m.sessions.len())
    }

    fn begin(&mut self, who: usize, cap: u64, data: Vec<u8>, declare: bool) -> (Kind, Kind) {
        let size = data.len() as u64;
        let digest = sha(&data);
        let dedup = if declare { self.m.dedup(cap, &digest, size) } else { None };
        let want = match self.m.require(who, cap, Role::Writer) {
            Err(k) => k,
            Ok(()) if self.m.live(who) >= MAX_LIVE as usize => Kind::QuotaExceeded,
            Ok(()) if self.m.records(who) >= DEFAULT_MAX_SESSION_RECORDS_PER_CALLER as usize => Kind::QuotaExceeded,
            // Room for the declared size, whether or not the bytes are already stored.
            Ok(()) => {
                let c = self.m.cap(cap).unwrap();
                if c.used + c.reserved + size > self.m.max_capsule_bytes {
                    Kind::QuotaExceeded
                } else {
                    Kind::Ok
                }
            }
        };
        let args = BeginArgs {
            chunk_size: Some(CS as u32),
            sha256: declare.then(|| ByteBuf::from(digest.clone())),
            ..begin_args(cap, size, None)
        };
        let r = self.w.state.uploads_begin(&self.ctx(who), args);
        if let Ok(s) = &r {
            let phase = match dedup {
                Some(blob) => {
                    // Answered from its record only: no `finished` entry outlives it.
                    assert_eq!(s.state, api::SessionState::Finished { blob_id: blob }, "dedup at begin");
                    Phase::Finished(blob)
                }
                None => {
                    self.m.cap_mut(cap).reserved += size;
                    Phase::Open
                }
            };
            self.m.sessions.push(MSession {
                id: s.id,
                cap,
                owner: who,
                data,
                declared: declare,
                received: BTreeSet::new(),
                phase,
                expires: self.m.now + TTL_S * 1_000_000_000,
                gone: false,
            });
        }
        (want, kind(&r))
    }

    fn finish_expectation(&self, i: usize, who: usize, right: bool) -> Kind {
        let s = &self.m.sessions[i];
        let answer = |blob: u64| match self.m.blob_of(blob) {
            None => Kind::NotFound,
            Some(_) if right => Kind::Ok,
            Some(_) => Kind::Conflict,
        };
        if s.gone {
            // after the record is dropped: the blob the session made answers, for whoever
            // can read it (sessions that found their bytes stored left no entry)
            return match self.m.finished.get(&s.id) {
                Some(&blob) if self.m.blob_of(blob).is_some_and(|b| self.m.role(who, b.cap).is_some()) => answer(blob),
                _ => Kind::NotFound,
            };
        }
        if !self.m.visible(who, s) {
            return Kind::NotFound;
        }
        if s.owner != who {
            return Kind::Unauthorized;
        }
        if let Phase::Finished(blob) = s.phase {
            return answer(blob);
        }
        if self.m.role(who, s.cap) < Some(Role::Writer) {
            return Kind::Unauthorized;
        }
        if s.phase == Phase::Aborted {
            return Kind::Conflict;
        }
        if self.m.now >= s.expires {
            return Kind::Expired;
        }
        if s.declared && !right {
            return Kind::InvalidArgument;
        }
        if s.received.len() < s.chunks() as usize {
            return Kind::InvalidArgument;
        }
        if !right {
            return Kind::ChecksumMismatch;
        }
        Kind::Ok
    }

    fn finished_ok(&mut self, i: usize, blob: &api::BlobMeta) {
        let s = &self.m.sessions[i];
        if let Phase::Finished(id) = s.phase {
            assert_eq!(blob.id, id, "a retried finish returns the same blob");
            return;
        }
        let (cap, size, sid) = (s.cap, s.data.len() as u64, s.id);
        let digest = sha(&s.data);
        assert_eq!(blob.sha256.to_vec(), digest);
        let existing = self.m.dedup(cap, &digest, size);
        let c = self.m.cap_mut(cap);
        c.reserved -= size;
        match existing {
            Some(id) => assert_eq!(blob.id, id, "dedup at finish"),
            None => {
                c.used += size;
                let data = self.m.sessions[i].data.clone();
                let admin = self.ctx(CONTROLLER);
                let back: Vec<u8> = (0..blob.chunk_count).flat_map(|i| self.w.state.blobs_read_chunk(&admin, blob.id, i).unwrap()).collect();
                assert!(back == data, "blob {} reads back other bytes", blob.id);
                self.m.blobs.push(MBlob { id: blob.id, cap, data_sha: digest, size, refs: 0, data });
                // The session that made the blob answers a retried finish as long as it exists.
                self.m.finished.insert(sid, blob.id);
            }
        }
        let now = self.m.now;
        let s = &mut self.m.sessions[i];
        s.phase = Phase::Finished(blob.id);
        s.expires = now + TTL_S * 1_000_000_000;
    }

    /// Everything the canister reports agrees with the model.
    fn check(&self) -> Result<(), TestCaseError> {
        let st = self.w.state.stats();
        let open: Vec<&MSession> = self.m.sessions.iter().filter(|s| !s.gone && s.phase == Phase::Open).collect();
        prop_assert_eq!(st.open_sessions as usize, open.len());
        let held: u64 = open.iter().map(|s| s.received.iter().map(|&i| s.chunk(i).len() as u64).sum::<u64>()).sum();
        prop_assert_eq!(st.session_bytes, held);
        prop_assert_eq!(st.reserved_bytes, Some(open.iter().map(|s| s.data.len() as u64).sum::<u64>()));
        prop_assert_eq!(st.blobs as usize, self.m.blobs.len());
        prop_assert_eq!(st.blob_bytes, self.m.blobs.iter().map(|b| b.size).sum::<u64>());
        prop_assert_eq!(st.memories as usize, self.m.memories.len());
        prop_assert_eq!(st.capsules as usize, self.m.caps.len());
        let admin = self.ctx(CONTROLLER);
        for c in &self.m.caps {
            let got = self.w.state.capsules_get(&admin, c.id).unwrap();
            prop_assert_eq!((got.bytes_used, got.reserved_bytes), (c.used, Some(c.reserved)), "capsule {}", c.id);
            let mut members: Vec<(Principal, Role)> = got.owners.iter().map(|p| (*p, Role::Owner)).collect();
            members.extend(got.writers.iter().map(|p| (*p, Role::Writer)));
            members.extend(got.readers.iter().map(|p| (*p, Role::Reader)));
            members.sort();
            let mut want: Vec<(Principal, Role)> = c.members.iter().map(|(w, r)| (principal(*w), *r)).collect();
            want.sort();
            prop_assert_eq!(members, want, "members of capsule {}", c.id);
            let mut invited: Vec<(Principal, Role)> = got.invited.unwrap().iter().map(|m| (m.principal, m.role)).collect();
            invited.sort();
            let mut want: Vec<(Principal, Role)> = c.invited.iter().map(|(w, r)| (principal(*w), *r)).collect();
            want.sort();
            prop_assert_eq!(invited, want, "invitations of capsule {}", c.id);
        }
        for s in open {
            let got = self.w.state.uploads_status(&admin, s.id).unwrap();
            let received: BTreeSet<u32> = got.received.iter().flat_map(|r| r.start..r.end).collect();
            prop_assert_eq!(&received, &s.received);
        }
        for b in &self.m.blobs {
            let got = self.w.state.blobs_meta(&admin, b.id).unwrap();
            prop_assert_eq!(got.refs, Some(b.refs));
        }
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Outcomes seen, by operation and kind, printed after the last case: evidence that the
/// interleavings reach every rule (refusals, expiry, quotas, dedup).
static SEEN: std::sync::Mutex<BTreeMap<String, u64>> = std::sync::Mutex::new(BTreeMap::new());
static CASES_RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn record(op: &Op, got: Kind) {
    let name = format!("{op:?}");
    let name = name.split([' ', '{']).next().unwrap_or("?").to_string();
    *SEEN.lock().unwrap().entry(format!("{name:<14} {got:?}")).or_default() += 1;
}

fn case_done() {
    let n = CASES_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n == cases() {
        let seen = SEEN.lock().unwrap();
        println!("{n} interleavings, {} steps, 0 divergences; outcomes:", seen.values().sum::<u64>());
        for (k, v) in seen.iter() {
            println!("  {k:<34} {v:>8}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn uploads_members_and_quotas_match_the_model(ops in prop::collection::vec(op(), 1..40), seed in any::<u64>()) {
        let mut run = Run::new();
        for (step, op) in ops.into_iter().enumerate() {
            let label = format!("step {step}: {op:?}");
            run.w.mem.reset();
            let (want, got) = run.step(op.clone(), seed ^ step as u64);
            prop_assert_eq!(got, want, "{}", label);
            record(&op, got);
            if got != Kind::Ok {
                prop_assert_eq!(run.w.mem.written.get(), 0, "{}: refused, but wrote to stable memory", label);
            }
            run.check().map_err(|e| TestCaseError::fail(format!("{label}: {e}")))?;
        }
        case_done();
    }
}
