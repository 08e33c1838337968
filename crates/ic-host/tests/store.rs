//! A host kept in a directory: what survives closing and crashing, what each committed
//! message writes (only its dirty pages) and what a rolled-back one writes (nothing),
//! torn and corrupt files, several canisters.

mod common;

use std::path::Path;

use common::*;
use ic_host::{Durability, Host, HostConfig, DEFAULT_CONTROLLER, DIRTY_PAGE_SIZE};

/// `set(v)`: heap[100] = v, global = v, stable[64 KiB * (v % 16)] = v (growing to 16
/// pages). `grow_heap`: grows the Wasm memory by one page and commits.
/// `read` = [heap, global, stable at page v % 16 of the last v, stable pages, memory pages].
fn store_canister() -> Vec<u8> {
    canister(
        r#"
  (global $g (mut i64) (i64.const 0))
  (func (export "canister_update set") (local $v i64)
    (local.set $v (call $arg_i64))
    (i64.store (i32.const 100) (local.get $v))
    (global.set $g (local.get $v))
    (if (i64.lt_u (call $stable_size) (i64.const 16)) (then (drop (call $stable_grow (i64.const 16)))))
    (call $stable_write (i64.mul (i64.rem_u (local.get $v) (i64.const 16)) (i64.const 65536)) (i64.const 100) (i64.const 8))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_update set_then_trap")
    (i64.store (i32.const 100) (i64.const -1))
    (drop (call $stable_grow (i64.const 1)))
    (call $stable_write (i64.const 0) (i64.const 100) (i64.const 8))
    (drop (memory.grow (i32.const 3)))
    (unreachable))
  (func (export "canister_update grow_heap")
    (drop (memory.grow (i32.const 1)))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_query read") (local $v i64)
    (local.set $v (i64.load (i32.const 100)))
    (i64.store (i32.const 200) (local.get $v))
    (i64.store (i32.const 208) (global.get $g))
    (i64.store (i32.const 216) (i64.const -1))
    (if (i64.ne (call $stable_size) (i64.const 0))
      (then (call $stable_read (i64.const 216) (i64.mul (i64.rem_u (local.get $v) (i64.const 16)) (i64.const 65536)) (i64.const 8))))
    (i64.store (i32.const 224) (call $stable_size))
    (i64.store (i32.const 232) (i64.extend_i32_u (memory.size)))
    (call $reply_bytes (i32.const 200) (i32.const 40)))
"#,
    )
}

fn install(dir: &Path) -> Host {
    let mut host = Host::open(dir).unwrap();
    host.install_default(&store_canister(), &[], HostConfig::default()).unwrap();
    host
}

fn read(host: &mut Host) -> Vec<i64> {
    i64s(&q(host, "read", &[]))
}

/// A copy of a directory as it is on disk now: what `kill -9` would leave.
fn snapshot(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            snapshot(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn heap_globals_stable_memory_and_system_state_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    let mut host = install(&dir);
    ok(&mut host, "set", &i64_arg(7));
    ok(&mut host, "grow_heap", &[]);
    host.set_time(1_900_000_000_000_000_000);
    host.set_controllers(vec![user(), DEFAULT_CONTROLLER]);
    let before = read(&mut host);
    assert_eq!(before, vec![7, 7, 7, 16, 2]);
    host.close().unwrap();

    let mut host = Host::open(&dir).unwrap();
    assert_eq!(host.canister_id(), ic_host::DEFAULT_CANISTER_ID);
    assert_eq!(read(&mut host), before, "heap, global, stable memory and memory size are back");
    assert_eq!(host.controllers(), &[user(), DEFAULT_CONTROLLER]);
    assert_eq!(host.time(), 1_900_000_000_000_000_000);
    ok(&mut host, "set", &i64_arg(8));
    assert_eq!(read(&mut host), vec![8, 8, 8, 16, 2]);
    // Another process (or host) cannot open it meanwhile.
    let e = Host::open(&dir).unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn a_commit_writes_its_dirty_pages_and_a_rollback_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = install(&tmp.path().join("host"));
    ok(&mut host, "set", &i64_arg(1));
    let s0 = host.store_stats();
    let r = host.update(user(), "set", &i64_arg(2));
    assert!(r.reply.is_ok());
    let s1 = host.store_stats();
    assert_eq!(s1.commits, s0.commits + 1);
    // One 8-byte write: one stable page; the heap changed in a page or two (value, stack).
    assert_eq!(r.stable_pages_dirtied, 1);
    assert!((1..=3).contains(&r.heap_pages_dirtied), "{}", r.heap_pages_dirtied);
    let pages = (r.stable_pages_dirtied + r.heap_pages_dirtied) * DIRTY_PAGE_SIZE as u64;
    assert_eq!(s1.page_bytes - s0.page_bytes, pages, "exactly the dirty pages are logged");
    let overhead = (s1.log_bytes - s0.log_bytes) - pages;
    println!("one committed message: {pages} bytes of pages + {overhead} bytes of log overhead");
    assert!(overhead < 2_000, "{overhead}");

    // Queries and traps (which also grow memory) write nothing and leave the memory's size.
    let log = host.log_bytes();
    let size = host.heap_size_bytes();
    for _ in 0..3 {
        assert!(host.update(user(), "set_then_trap", &[]).reply.is_err());
        assert!(host.query(user(), "read", &[]).reply.is_ok());
    }
    assert_eq!(host.store_stats().commits, s1.commits);
    assert_eq!(host.log_bytes(), log);
    assert_eq!(host.heap_size_bytes(), size);
    assert_eq!(read(&mut host), vec![2, 2, 2, 16, 1]);
}

#[test]
fn a_crash_keeps_every_committed_message_and_a_torn_log_tail_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    let mut host = install(&dir);
    host.set_checkpoint_bytes(u64::MAX); // everything stays in the log
    for v in 1..=4 {
        ok(&mut host, "set", &i64_arg(v));
    }
    let before = host.log_bytes();
    ok(&mut host, "set", &i64_arg(5));
    let record = (host.log_bytes() - before) as usize;
    let log_after_4 = {
        let crashed = tmp.path().join("crash");
        snapshot(&dir, &crashed);
        let wal = std::fs::read(crashed.join("wal")).unwrap();
        // "Kill" now: the log holds the messages, the metadata file does not.
        let mut reopened = Host::open(&crashed).unwrap();
        assert_eq!(read(&mut reopened), vec![5, 5, 5, 16, 1]);
        ok(&mut reopened, "set", &i64_arg(6));
        assert_eq!(read(&mut reopened), vec![6, 6, 6, 16, 1]);
        wal
    };
    // The last record torn at several places, or followed by garbage: the state
    // before it (or all of it) opens.
    for (i, cut) in [1, record / 2, record - 1].into_iter().enumerate() {
        let torn = tmp.path().join(format!("torn{i}"));
        snapshot(&dir, &torn);
        std::fs::write(torn.join("wal"), &log_after_4[..log_after_4.len() - cut]).unwrap();
        let mut h = Host::open(&torn).unwrap();
        assert_eq!(read(&mut h), vec![4, 4, 4, 16, 1], "cut {cut} bytes");
    }
    let garbage = tmp.path().join("garbage");
    snapshot(&dir, &garbage);
    let mut wal = log_after_4.clone();
    wal.extend_from_slice(b"ICWL and then some bytes that are no record");
    std::fs::write(garbage.join("wal"), wal).unwrap();
    assert_eq!(read(&mut Host::open(&garbage).unwrap()), vec![5, 5, 5, 16, 1]);
    drop(host);
}

#[test]
fn corrupt_or_foreign_metadata_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    install(&dir).close().unwrap();
    let meta = std::fs::read(dir.join("meta")).unwrap();
    let mut flipped = meta.clone();
    flipped[30] ^= 1;
    std::fs::write(dir.join("meta"), &flipped).unwrap();
    let e = Host::open(&dir).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    let mut newer = meta.clone();
    newer[8] = 99; // format version
    std::fs::write(dir.join("meta"), &newer).unwrap();
    let e = Host::open(&dir).unwrap_err();
    assert!(e.to_string().contains("version 99"), "{e}");
    std::fs::write(dir.join("meta"), &meta[..meta.len() - 3]).unwrap();
    assert!(Host::open(&dir).is_err());
    std::fs::write(dir.join("meta"), &meta).unwrap();
    Host::open(&dir).unwrap();
}

#[test]
fn several_canisters_persist_and_a_deleted_one_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    let mut host = install(&dir);
    let b = add_canister(&mut host, &store_canister(), 1_000);
    let c = add_canister(&mut host, &store_canister(), 2_000);
    assert_eq!(host.update_call(b, user(), "set", &i64_arg(21)).reply, Ok(vec![]));
    assert_eq!(host.update_call(c, user(), "set", &i64_arg(33)).reply, Ok(vec![]));
    let rec = ic_host::management_types::CanisterIdRecord { canister_id: b };
    let () = host.management(DEFAULT_CONTROLLER, "stop_canister", &rec).unwrap();
    let () = host.management(DEFAULT_CONTROLLER, "delete_canister", &rec).unwrap();
    drop(host);

    let mut host = Host::open(&dir).unwrap();
    assert_eq!(host.canister_ids(), vec![ic_host::DEFAULT_CANISTER_ID, c]);
    assert_eq!(i64s(&host.query_call(c, user(), "read", &[]).reply.unwrap()), vec![33, 33, 33, 16, 1]);
    assert_eq!(host.cycle_balance(c), Some(2_000));
    assert!(!dir.join("canisters").join(b.to_text()).exists());
    assert!(dir.join("canisters").join(c.to_text()).join("stable").exists());
    // A new canister never gets a deleted one's id.
    let d = add_canister(&mut host, &store_canister(), 0);
    assert!(![b, c].contains(&d));
}

#[test]
fn deferred_durability_syncs_once_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let mut host = install(&tmp.path().join("host"));
    host.set_durability(Durability::Deferred);
    let s0 = host.store_stats();
    for v in 0..10 {
        ok(&mut host, "set", &i64_arg(v));
    }
    let s1 = host.store_stats();
    assert_eq!((s1.commits - s0.commits, s1.syncs - s0.syncs), (10, 0));
    host.sync().unwrap();
    assert_eq!(host.store_stats().syncs, s1.syncs + 1);
    host.set_durability(Durability::EveryCommit);
    ok(&mut host, "set", &i64_arg(1));
    assert_eq!(host.store_stats().syncs, s1.syncs + 2);
}

#[test]
fn upgrades_are_kept_and_failed_ones_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    let mut host = install(&dir);
    ok(&mut host, "set", &i64_arg(3));
    let log = host.log_bytes();
    let bad = wat::parse_str(r#"(module (memory 1) (func (export "canister_post_upgrade") unreachable))"#).unwrap();
    assert!(host.upgrade(&bad, &[]).is_err());
    assert_eq!(host.log_bytes(), log, "a failed upgrade logs nothing");
    host.upgrade(&store_canister(), &[]).unwrap();
    assert_eq!(read(&mut host), vec![0, 0, 0, 16, 1], "heap gone, stable memory kept");
    drop(host);
    let mut host = Host::open(&dir).unwrap();
    assert_eq!(read(&mut host), vec![0, 0, 0, 16, 1]);
    let mut page3 = [0u8; 8];
    page3.copy_from_slice(&host.read_stable(3 * 65536, 8).unwrap());
    assert_eq!(i64::from_le_bytes(page3), 3, "stable memory kept across the upgrade and the reopen");
}
