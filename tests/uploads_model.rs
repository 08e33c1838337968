//! Model-based property test: several sessions interleave begin / put (shuffled,
//! duplicated, conflicting) / finish / abort / upgrade, checked step by step against a
//! simple model. A finished blob's digest always equals SHA-256 of its bytes.

mod common;

use std::collections::BTreeSet;

use backend::api::{BeginArgs, Error};
use common::*;
use proptest::prelude::*;

const CS: u32 = 64 * 1024; // smallest chunk size keeps cases fast

#[derive(Clone, Debug)]
enum Op {
    Begin { size: usize, pmid_shared: bool },
    Put { slot: usize, idx: u32, corrupt: bool },
    Finish { slot: usize, right_hash: bool },
    Abort { slot: usize },
    Upgrade,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1usize..(5 * CS as usize), any::<bool>()).prop_map(|(size, pmid_shared)| Op::Begin { size, pmid_shared }),
        10 => (0usize..4, 0u32..6, prop::bool::weighted(0.15)).prop_map(|(slot, idx, corrupt)| Op::Put { slot, idx, corrupt }),
        2 => (0usize..4, prop::bool::weighted(0.8)).prop_map(|(slot, right_hash)| Op::Finish { slot, right_hash }),
        1 => (0usize..4).prop_map(|slot| Op::Abort { slot }),
        1 => Just(Op::Upgrade),
    ]
}

#[derive(Debug, PartialEq)]
enum Phase {
    Open,
    Finished(u64),
    Aborted,
}

struct ModelSession {
    session: backend::api::Session,
    data: Vec<u8>,
    received: BTreeSet<u32>,
    phase: Phase,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn uploads_match_the_model(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let mut w = World::new();
        let alice = user(1);
        let cap = w.capsule(alice);
        let mut model: Vec<ModelSession> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Begin { size, pmid_shared } => {
                    let pmid = if pmid_shared { "shared".to_string() } else { format!("p{step}") };
                    let args = BeginArgs { chunk_size: Some(CS), ..begin_args(cap, size as u64, Some(&pmid)) };
                    let s = w.state.uploads_begin(&w.ctx(alice), args).unwrap();
                    prop_assert_eq!(s.chunk_count as usize, size.div_ceil(CS as usize));
                    model.push(ModelSession { session: s, data: file(size, seed ^ step as u64), received: BTreeSet::new(), phase: Phase::Open });
                }
                Op::Put { slot, idx, corrupt } => {
                    let Some(m) = model.get_mut(slot) else { continue };
                    if idx >= m.session.chunk_count { continue; }
                    let mut bytes = chunk_of(&m.session, idx, &m.data).to_vec();
                    let conflicting = corrupt && m.received.contains(&idx);
                    if conflicting { bytes[0] ^= 0xff; }
                    let r = w.state.uploads_put_chunk(&w.ctx(alice), m.session.id, idx, &bytes);
                    match m.phase {
                        Phase::Open if conflicting => prop_assert!(matches!(r, Err(Error::Conflict(_))), "{:?}", r),
                        Phase::Open => {
                            let ok = r.unwrap();
                            prop_assert_eq!(ok.stored, m.received.insert(idx));
                            prop_assert_eq!(ok.received_chunks as usize, m.received.len());
                        }
                        _ => prop_assert!(matches!(r, Err(Error::Conflict(_))), "{:?}", r),
                    }
                }
                Op::Finish { slot, right_hash } => {
                    let Some(m) = model.get_mut(slot) else { continue };
                    let digest = if right_hash { sha(&m.data) } else { sha(b"wrong") };
                    let r = w.finish(alice, &m.session, &digest, m.data.len());
                    match (&m.phase, right_hash) {
                        (Phase::Aborted, _) => prop_assert!(matches!(r, Err(Error::Conflict(_))), "{:?}", r),
                        (Phase::Finished(id), true) => prop_assert_eq!(r.unwrap().id, *id),
                        (Phase::Finished(_), false) => prop_assert!(matches!(r, Err(Error::Conflict(_))), "{:?}", r),
                        (Phase::Open, _) if m.received.len() < m.session.chunk_count as usize =>
                            prop_assert!(matches!(r, Err(Error::InvalidArgument(_))), "{:?}", r),
                        (Phase::Open, false) => prop_assert!(matches!(r, Err(Error::ChecksumMismatch(_))), "{:?}", r),
                        (Phase::Open, true) => {
                            let blob = r.unwrap();
                            prop_assert_eq!(blob.sha256.to_vec(), sha(&m.data));
                            prop_assert!(w.read_all(alice, &blob) == m.data, "blob bytes differ");
                            m.phase = Phase::Finished(blob.id);
                        }
                    }
                }
                Op::Abort { slot } => {
                    let Some(m) = model.get_mut(slot) else { continue };
                    let r = w.state.uploads_abort(&w.ctx(alice), m.session.id);
                    match m.phase {
                        Phase::Finished(_) => prop_assert!(matches!(r, Err(Error::Conflict(_))), "{:?}", r),
                        _ => { r.unwrap(); m.phase = Phase::Aborted; }
                    }
                }
                Op::Upgrade => w.upgrade(),
            }
            // global invariants after every step
            let stats = w.state.stats();
            let open: Vec<_> = model.iter().filter(|m| m.phase == Phase::Open).collect();
            prop_assert_eq!(stats.open_sessions as usize, open.len());
            let held: u64 = open.iter().map(|m| m.received.iter().map(|&i| chunk_of(&m.session, i, &m.data).len() as u64).sum::<u64>()).sum();
            prop_assert_eq!(stats.session_bytes, held);
            let finished: Vec<_> = model.iter().filter(|m| matches!(m.phase, Phase::Finished(_))).collect();
            prop_assert_eq!(stats.blobs as usize, finished.len());
            prop_assert_eq!(stats.blob_bytes, finished.iter().map(|m| m.data.len() as u64).sum::<u64>());
            for m in open {
                let st = w.state.uploads_status(&w.ctx(alice), m.session.id).unwrap();
                let got: BTreeSet<u32> = st.received.iter().flat_map(|r| r.start..r.end).collect();
                prop_assert_eq!(&got, &m.received);
            }
        }
    }
}
