//! Directory mode on a local network (ic-net over the embedded host, the real HTTPS
//! interface): a `directory` canister with three `backend` storage canisters. The test
//! talks to it with ic-agent and runs the `keepsake` CLI with `--directory`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use candid::{CandidType, Principal};
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, Identity};
use ic_host::management_types as mgmt;
use keepsake::directory::dir::{self, CapsuleLocation, StorageInfo, StorageState, UpgradeState};
use serde::Deserialize;

use common::Run;

struct Net {
    net: ic_net::Network,
    url: String,
    directory: Principal,
    storage: Vec<Principal>,
}

fn start(tmp: &Path, me: Principal) -> Net {
    let backend = std::fs::read(common::wasm()).unwrap();
    let dir_wasm = std::fs::read(keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("directory.wasm.gz")).unwrap();
    let mut host = ic_host::Host::new(&backend, &candid::encode_args(()).unwrap()).unwrap();
    let (directory, storage) = keepsake::directory::setup_local(&mut host, tmp, &dir_wasm, &backend, 3, &[me]).unwrap();
    let net = ic_net::Network::start(host, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let url = net.url();
    Net { net, url, directory, storage }
}

fn agent(url: &str, pem: &Path) -> Agent {
    let rt = rt();
    let a = Agent::builder().with_url(url).with_identity(BasicIdentity::from_pem_file(pem).unwrap()).build().unwrap();
    rt.block_on(a.fetch_root_key()).unwrap();
    a
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn update<A: CandidType, R: for<'de> Deserialize<'de> + CandidType>(a: &Agent, c: Principal, m: &str, arg: A) -> R {
    let bytes = rt().block_on(a.update(&c, m).with_arg(candid::encode_one(arg).unwrap()).call_and_wait()).unwrap_or_else(|e| panic!("{m}: {e}"));
    candid::decode_one(&bytes).unwrap()
}

fn update_raw(a: &Agent, c: Principal, m: &str, arg: Vec<u8>) -> Result<Vec<u8>, String> {
    rt().block_on(a.update(&c, m).with_arg(arg).call_and_wait()).map_err(|e| e.to_string())
}

fn query<R: for<'de> Deserialize<'de> + CandidType>(a: &Agent, c: Principal, m: &str, arg: Vec<u8>) -> R {
    let bytes = rt().block_on(a.query(&c, m).with_arg(arg).call()).unwrap_or_else(|e| panic!("{m}: {e}"));
    candid::decode_one(&bytes).unwrap()
}

fn create(a: &Agent, d: Principal, name: &str) -> dir::Result<CapsuleLocation> {
    update(a, d, "capsules_create", dir::CapsuleCreateArgs { name: name.into() })
}

fn status(a: &Agent, d: Principal) -> dir::Status {
    query(a, d, "status", candid::encode_args(()).unwrap())
}

fn storage_of(a: &Agent, d: Principal) -> Vec<StorageInfo> {
    query(a, d, "storage_list", candid::encode_args(()).unwrap())
}

/// The capsule ids storage canister `c` holds for the owner `a` signs as.
fn capsules_on(a: &Agent, c: Principal) -> Vec<u64> {
    #[derive(CandidType, Deserialize)]
    struct Capsule {
        id: u64,
    }
    #[derive(CandidType, Deserialize)]
    struct Page {
        capsules: Vec<Capsule>,
        next_cursor: Option<u64>,
    }
    let mut ids = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let p: Page = query(a, c, "capsules_page", candid::encode_args((cursor, 1000u32)).unwrap());
        ids.extend(p.capsules.iter().map(|c| c.id));
        match p.next_cursor {
            Some(n) => cursor = Some(n),
            None => return ids,
        }
    }
}

fn cli(n: &Net, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    cli_at(n, cwd, None, args, env)
}

/// `canister`: `--canister ID` instead of `--directory`.
fn cli_at(n: &Net, cwd: &Path, canister: Option<Principal>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = cli_cmd(n, cwd, canister, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// The CLI started in the background, through the directory; its output is piped.
fn cli_spawn(n: &Net, cwd: &Path, args: &[&str]) -> std::process::Child {
    cli_cmd(n, cwd, None, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn cli_cmd(n: &Net, cwd: &Path, canister: Option<Principal>, args: &[&str]) -> Command {
    let target = match canister {
        Some(c) => ["--canister".to_string(), c.to_text()],
        None => ["--directory".to_string(), n.directory.to_text()],
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepsake"));
    cmd.current_dir(cwd)
        .arg("--state")
        .arg(cwd.join("cli"))
        .args(["--network", &n.url])
        .args(&target)
        .arg("--identity")
        .arg(cwd.join("me.pem"))
        .arg("--json")
        .args(args)
        .env_remove("KEEPSAKE_CANISTER")
        .env_remove("KEEPSAKE_STOP_AFTER_CHUNKS");
    cmd
}

fn cli_ok(n: &Net, cwd: &Path, args: &[&str]) -> serde_json::Value {
    cli_ok_at(n, cwd, None, args)
}

fn cli_ok_at(n: &Net, cwd: &Path, canister: Option<Principal>, args: &[&str]) -> serde_json::Value {
    let r = cli_at(n, cwd, canister, args, &[]);
    assert_eq!(r.code, 0, "keepsake {args:?}:\n{}\n{}", r.stdout, r.stderr);
    r.json()
}

fn sha(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

fn mgmt_call(a: &Agent, method: &str, id: Principal) -> Result<Vec<u8>, String> {
    let arg = candid::encode_one(mgmt::CanisterIdRecord { canister_id: id }).unwrap();
    rt().block_on(a.update(&Principal::management_canister(), method).with_effective_canister_id(id).with_arg(arg).call_and_wait())
        .map_err(|e| e.to_string())
}

#[test]
fn a_directory_places_capsules_upgrades_its_storage_and_survives_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    keepsake::identity::write_new_ed25519_pem(&cwd.join("me.pem")).unwrap();
    keepsake::identity::write_new_ed25519_pem(&cwd.join("admin.pem")).unwrap();
    let admin_p = BasicIdentity::from_pem_file(cwd.join("admin.pem")).unwrap().sender().unwrap();
    let n = start(cwd, admin_p);
    let admin = agent(&n.url, &cwd.join("admin.pem"));
    let user = agent(&n.url, &cwd.join("me.pem"));
    let d = n.directory;
    assert_eq!(n.storage.len(), 3);

    // Only the directory creates capsules on a storage canister in directory mode.
    let direct: Vec<u8> = update_raw(&user, n.storage[0], "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "x".into() }).unwrap()).unwrap();
    let refused: Result<backend::api::Capsule, backend::api::Error> = candid::decode_one(&direct).unwrap();
    assert!(matches!(refused, Err(backend::api::Error::Unauthorized(ref m)) if m.contains(&d.to_text())), "{refused:?}");

    // A Wasm-sized argument from someone who is not a controller is turned away by the
    // directory's inspect_message before it runs; a small admin call gets its typed answer.
    let wasm_arg = candid::encode_one(serde_bytes::ByteBuf::from(vec![0u8; 1 << 20])).unwrap();
    let turned_away = update_raw(&user, d, "admin_set_storage_wasm", wasm_arg).unwrap_err();
    assert!(turned_away.contains("inspect_message"), "{turned_away}");
    let typed: dir::Result<Vec<StorageInfo>> = candid::decode_one(&update_raw(&user, d, "admin_refresh", candid::encode_args(()).unwrap()).unwrap()).unwrap();
    assert!(matches!(typed, Err(dir::Error::Unauthorized(_))), "{typed:?}");

    // A user may create max_capsules_per_owner (16) capsules; the operator raises it.
    for i in 0..16 {
        create(&user, d, &format!("c{i}")).unwrap();
    }
    let refused = create(&user, d, "one too many").unwrap_err();
    assert!(matches!(refused, dir::Error::NoRoom(ref m) if m.contains("max_capsules_per_owner")), "{refused:?}");
    let cfg: dir::Result<dir::DirectoryConfig> =
        update(&admin, d, "admin_set_config", dir::ConfigUpdate { max_capsules_per_owner: Some(1000), min_free_bytes: Some(16 << 20), ..Default::default() });
    cfg.unwrap();
    let t0 = std::time::Instant::now();
    let mut locs: Vec<CapsuleLocation> = Vec::new();
    for i in 16..100 {
        locs.push(create(&user, d, &format!("c{i}")).unwrap());
    }
    eprintln!("84 capsules created through the directory in {:.1} s", t0.elapsed().as_secs_f64());
    let mine: dir::LocationPage = query(&user, d, "capsules_list", candid::encode_args((None::<u64>, None::<u32>)).unwrap());
    assert_eq!(mine.capsules.len(), 100);
    let mut per: BTreeMap<Principal, usize> = BTreeMap::new();
    for l in &mine.capsules {
        *per.entry(l.canister_id).or_default() += 1;
    }
    eprintln!("placement of 100 capsules: {:?}", per.values().collect::<Vec<_>>());
    assert_eq!(per.len(), 3, "every storage canister got capsules");
    assert!(per.values().all(|&c| (33..=34).contains(&c)), "balanced: {per:?}");
    // The map is exactly what the storage canisters hold.
    for s in &n.storage {
        let mut on: Vec<u64> = capsules_on(&user, *s);
        on.sort();
        let mapped: Vec<u64> = mine.capsules.iter().filter(|l| l.canister_id == *s).map(|l| l.capsule_id).collect();
        assert_eq!(on, mapped, "storage canister {s}");
    }

    // Uploads through the CLI: capsule → storage canister via the directory (cached).
    let a = &mine.capsules[0];
    let b = mine.capsules.iter().find(|l| l.canister_id != a.canister_id).unwrap().clone();
    common::random_file(&cwd.join("a.bin"), 3_000_000, 1);
    let up = cli_ok(&n, cwd, &["upload", "--capsule", &a.capsule_id.to_string(), "a.bin"]);
    assert_eq!(up["ok"], true, "{up}");
    let ls = cli_ok(&n, cwd, &["ls", "--capsule", &a.capsule_id.to_string()]);
    let mem = ls["memories"][0]["id"].as_u64().unwrap();
    cli_ok_at(&n, cwd, Some(a.canister_id), &["get", &mem.to_string(), "-o", "a.back"]);
    assert_eq!(sha(&cwd.join("a.back")), sha(&cwd.join("a.bin")));
    let cache = std::fs::read_to_string(cwd.join("cli/directory-cache.json")).unwrap();
    assert!(cache.contains(&a.canister_id.to_text()), "{cache}");
    // One lookup, then cached: with the directory stopped, the capsule is still found.
    mgmt_call(&admin, "stop_canister", d).unwrap();
    cli_ok(&n, cwd, &["ls", "--capsule", &a.capsule_id.to_string()]);
    // A capsule not cached yet: the lookup is retried (--retry-for) until the directory
    // runs again.
    let child = cli_spawn(&n, cwd, &["ls", "--capsule", &b.capsule_id.to_string()]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    mgmt_call(&admin, "start_canister", d).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the lookup waited for the directory: {}", String::from_utf8_lossy(&out.stderr));

    // Figures: what the directory adds per capsule and per lookup (instructions as the
    // IC counts them, every message the call caused).
    let per_canister = |calls: &[ic_host::CallResult]| {
        let mut m: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        for c in calls {
            let who = if c.canister == d { "directory".to_string() } else { format!("storage {}", c.canister) };
            let e = m.entry(who).or_default();
            e.0 += 1;
            e.1 += c.instructions;
        }
        m
    };
    create(&user, d, "figures").unwrap();
    let calls = n.net.exec().last_call().unwrap();
    let total: u64 = calls.iter().map(|c| c.instructions).sum();
    eprintln!("capsules_create through the directory: {} messages, {total} instructions: {:?}", calls.len(), per_canister(&calls));
    let plain = n.net.exec().with_host(|h| h.canister_id()).unwrap();
    let _ = update_raw(&user, plain, "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "plain".into() }).unwrap()).unwrap();
    let calls = n.net.exec().last_call().unwrap();
    eprintln!("capsules_create on a single backend: {} messages, {} instructions", calls.len(), calls.iter().map(|c| c.instructions).sum::<u64>());
    let _: dir::Result<CapsuleLocation> = query(&user, d, "capsules_locate", candid::encode_one(a.capsule_id).unwrap());
    let calls = n.net.exec().last_call().unwrap();
    eprintln!("capsules_locate (once per capsule and client, then cached): {} instructions", calls.iter().map(|c| c.instructions).sum::<u64>());

    // Cycles: storage canisters below the threshold are topped up at the next refresh.
    let cycles_of = |id: Principal| n.net.exec().with_host(move |h| h.cycle_balance(id).unwrap()).unwrap();
    let before: Vec<u128> = n.storage.iter().map(|s| cycles_of(*s)).collect();
    let dir_before = cycles_of(d);
    let big = 1u64 << 60;
    let cfg: dir::Result<dir::DirectoryConfig> =
        update(&admin, d, "admin_set_config", dir::ConfigUpdate { top_up_below: Some(big), top_up_cycles: Some(500_000_000_000), ..Default::default() });
    cfg.unwrap();
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    for (s, b) in n.storage.iter().zip(&before) {
        let now = cycles_of(*s);
        assert!(now >= b + 499_000_000_000 && now <= b + 500_000_000_000, "{s}: {b} → {now}");
    }
    assert!(cycles_of(d) <= dir_before - 1_500_000_000_000, "the directory paid the top-ups");
    let cfg: dir::Result<dir::DirectoryConfig> = update(&admin, d, "admin_set_config", dir::ConfigUpdate { top_up_below: Some(0), ..Default::default() });
    cfg.unwrap();
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    assert!(cycles_of(n.storage[0]) <= before[0] + 500_000_000_000, "not topped up above the threshold");

    // Fill storage canister 0 to its limit: new capsules go elsewhere, uploads that fit
    // still work there.
    let full = n.storage[0];
    let on_full = mine.capsules.iter().find(|l| l.canister_id == full).unwrap().capsule_id;
    use backend::api::ConfigUpdate;
    let _: candid::Reserved = {
        let r = update_raw(&admin, full, "admin_set_config", candid::encode_one(ConfigUpdate { max_stored_bytes: Some(40 << 20), ..Default::default() }).unwrap()).unwrap();
        candid::decode_one(&r).unwrap()
    };
    common::random_file(&cwd.join("big.bin"), 30 << 20, 2);
    cli_ok(&n, cwd, &["upload", "--capsule", &on_full.to_string(), "big.bin"]);
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    let st = storage_of(&admin, d);
    assert_eq!(st.iter().find(|s| s.canister_id == full).unwrap().state, StorageState::Full, "{st:?}");
    for i in 0..10 {
        let l = create(&user, d, &format!("after-full-{i}")).unwrap();
        assert_ne!(l.canister_id, full, "a full storage canister took a new capsule");
    }
    common::random_file(&cwd.join("small.bin"), 2 << 20, 3);
    cli_ok(&n, cwd, &["upload", "--capsule", &on_full.to_string(), "small.bin"]);

    // A storage canister stopped: the CLI retries for --retry-for seconds (tries at 0,
    // 0.2, 0.6 and 1.4 s within 2 s), then says so; the directory places elsewhere; once
    // it runs again, the same command works.
    let stopped = b.canister_id;
    mgmt_call(&admin, "stop_canister", stopped).unwrap();
    let t0 = std::time::Instant::now();
    let r = cli(&n, cwd, &["--retry-for", "2", "ls", "--capsule", &b.capsule_id.to_string()], &[]);
    let gave_up_after = t0.elapsed();
    assert_ne!(r.code, 0);
    assert!(gave_up_after >= std::time::Duration::from_millis(1400), "retried for its budget: {gave_up_after:?}");
    assert!(gave_up_after < std::time::Duration::from_secs(20), "gave up after its 2 s, not the default 30 s: {gave_up_after:?}");
    assert!(r.stderr.contains("stopped"), "clear error: {}", r.stderr);
    for i in 0..5 {
        let l = create(&user, d, &format!("while-stopped-{i}")).unwrap();
        assert_ne!(l.canister_id, stopped);
    }
    assert_eq!(status(&admin, d).pending, 0);
    // An upload to it started while it is stopped finishes once it is started.
    common::random_file(&cwd.join("b.bin"), 1 << 20, 4);
    let child = cli_spawn(&n, cwd, &["upload", "--capsule", &b.capsule_id.to_string(), "b.bin"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    mgmt_call(&admin, "start_canister", stopped).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    assert_ne!(storage_of(&admin, d).iter().find(|s| s.canister_id == stopped).unwrap().state, StorageState::Unreachable);

    // A trap in the directory's callback (after the storage canister created the
    // capsule) leaves no map entry, only a pending placement; a refresh finishes it.
    let before = status(&admin, d);
    let dcopy = d;
    // Its first callback (the candidate's room) runs; the second (the create) traps.
    n.net.exec().with_host(move |h| h.inject_callback_trap(dcopy, 1)).unwrap();
    let trapped = update_raw(&user, d, "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "trapped".into() }).unwrap());
    assert!(trapped.is_err(), "the caller sees the trap");
    let mid = status(&admin, d);
    assert_eq!(mid.capsules, before.capsules, "no half-written map entry");
    assert_eq!(mid.pending, 1);
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    let after = status(&admin, d);
    assert_eq!((after.capsules, after.pending), (before.capsules + 1, 0), "the placement was finished");
    let mine: dir::LocationPage = query(&user, d, "capsules_list", candid::encode_args((None::<u64>, None::<u32>)).unwrap());
    for s in &n.storage {
        let mut on: Vec<u64> = capsules_on(&user, *s);
        on.sort();
        let mapped: Vec<u64> = mine.capsules.iter().filter(|l| l.canister_id == *s).map(|l| l.capsule_id).collect();
        assert_eq!(on, mapped, "after the trap: storage canister {s}");
    }

    // The operator gives the full canister room again: it takes new capsules again.
    let r = update_raw(&admin, full, "admin_set_config", candid::encode_one(ConfigUpdate { max_stored_bytes: Some(1 << 30), ..Default::default() }).unwrap()).unwrap();
    let _: candid::Reserved = candid::decode_one(&r).unwrap();
    let _: dir::Result<Vec<StorageInfo>> = update(&admin, d, "admin_refresh", ());
    assert_eq!(storage_of(&admin, d).iter().find(|s| s.canister_id == full).unwrap().state, StorageState::Active);

    // Rolling upgrade to a new module (the same code, gzipped: other bytes, other hash)
    // in the middle of parallel uploads into all three storage canisters.
    let gz = std::fs::read(keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("backend.wasm.gz")).unwrap();
    let ups: Vec<(u64, String)> = n
        .storage
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let l = mine.capsules.iter().find(|l| l.canister_id == *s).unwrap();
            let f = format!("par{i}.bin");
            common::random_file(&cwd.join(&f), 12 << 20, 10 + i as u64);
            (l.capsule_id, f)
        })
        .collect();
    let children: Vec<_> = ups
        .iter()
        .map(|(c, f)| {
            Command::new(env!("CARGO_BIN_EXE_keepsake"))
                .current_dir(cwd)
                .arg("--state")
                .arg(cwd.join(format!("cli-{c}")))
                .args(["--network", &n.url, "--directory", &d.to_text(), "--identity"])
                .arg(cwd.join("me.pem"))
                .args(["--json", "--jobs", "2", "upload", "--capsule", &c.to_string(), f])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let h: dir::Result<serde_bytes::ByteBuf> = update(&admin, d, "admin_set_storage_wasm", serde_bytes::ByteBuf::from(gz.clone()));
    let target = h.unwrap();
    // The directory's callback of the first stop traps: the run stops there, the
    // canister stays stopped (uploads into it retry), and the operator resumes it.
    n.net.exec().with_host(move |h| h.inject_callback_trap(dcopy, 1)).unwrap();
    let started: dir::Result<dir::UpgradeStatus> = update(&admin, d, "admin_upgrade_storage", ());
    assert_eq!(started.unwrap().total, 3);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let u = status(&admin, d).upgrade.unwrap();
    assert_eq!((u.state.clone(), u.done, u.current), (UpgradeState::Running, 0, Some(n.storage[0])), "{u:?}");
    assert_eq!(storage_of(&admin, d)[0].state, StorageState::Upgrading);
    // The directory itself is upgraded now: its post_upgrade resumes the run (an operator
    // could also call admin_upgrade_storage again).
    let dir_wasm = std::fs::read(keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("directory.wasm.gz")).unwrap();
    let install = |wasm: Vec<u8>| {
        let arg = candid::encode_one(mgmt::InstallCodeArgs {
            mode: mgmt::CanisterInstallMode::Upgrade(None),
            canister_id: d,
            wasm_module: wasm,
            arg: candid::encode_args(()).unwrap(),
            sender_canister_version: None,
        })
        .unwrap();
        rt().block_on(admin.update(&Principal::management_canister(), "install_code").with_effective_canister_id(d).with_arg(arg).call_and_wait()).unwrap();
    };
    install(dir_wasm.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let u = status(&admin, d).upgrade.unwrap();
        match u.state {
            UpgradeState::Done => break,
            UpgradeState::Failed(m) => panic!("rolling upgrade failed: {m}"),
            UpgradeState::Running => {}
        }
        assert!(std::time::Instant::now() < deadline, "rolling upgrade did not finish: {u:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for s in storage_of(&admin, d) {
        assert_eq!(s.module_sha256.as_ref().map(|h| h.as_slice()), Some(target.as_slice()), "{}", s.canister_id);
    }
    for (child, (c, f)) in children.into_iter().zip(&ups) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "upload into {c}: {}", String::from_utf8_lossy(&out.stderr));
        let ls = cli_ok(&n, cwd, &["ls", "--capsule", &c.to_string()]);
        let m = ls["memories"].as_array().unwrap().iter().find(|m| m["title"] == f.as_str()).unwrap()["id"].as_u64().unwrap();
        let back = format!("{f}.back");
        let canister = mine.capsules.iter().find(|l| l.capsule_id == *c).unwrap().canister_id;
        cli_ok_at(&n, cwd, Some(canister), &["get", &m.to_string(), "-o", &back]);
        assert_eq!(sha(&cwd.join(&back)), sha(&cwd.join(f)), "{f}");
    }

    // The directory upgraded: its map, storage list and counts are kept.
    let map_before: dir::LocationPage = query(&user, d, "capsules_list", candid::encode_args((None::<u64>, None::<u32>)).unwrap());
    install(dir_wasm);
    let map_after: dir::LocationPage = query(&user, d, "capsules_list", candid::encode_args((None::<u64>, None::<u32>)).unwrap());
    assert_eq!(map_before, map_after);
    for l in &map_after.capsules {
        let r: dir::Result<CapsuleLocation> = query(&user, d, "capsules_locate", candid::encode_one(l.capsule_id).unwrap());
        assert_eq!(&r.unwrap(), l);
    }
    assert_eq!(storage_of(&admin, d).len(), 3);
    n.net.shutdown().unwrap();
}
