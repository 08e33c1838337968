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
    let dir_wasm = std::fs::read(directory_wasm_path()).unwrap();
    let mut host = ic_host::Host::new(&backend, &candid::encode_args(()).unwrap()).unwrap();
    let (directory, storage) = keepsake::directory::setup_local(&mut host, tmp, &dir_wasm, &backend, 3, &[me]).unwrap();
    let net = ic_net::Network::start(host, SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let url = net.url();
    Net { net, url, directory, storage }
}

/// The directory Wasm under test: the build's, or `KEEPSAKE_TEST_DIRECTORY_WASM` (to run
/// these tests against an older directory and see what they catch).
fn directory_wasm_path() -> std::path::PathBuf {
    match std::env::var_os("KEEPSAKE_TEST_DIRECTORY_WASM") {
        Some(p) => p.into(),
        None => keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("directory.wasm.gz"),
    }
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
    update(a, d, "capsules_create", dir::CapsuleCreateArgs { name: name.into(), invite: None })
}

fn create_with(a: &Agent, d: Principal, name: &str, invite: &str) -> dir::Result<CapsuleLocation> {
    update(a, d, "capsules_create", dir::CapsuleCreateArgs { name: name.into(), invite: Some(invite.into()) })
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
    let direct: Vec<u8> = update_raw(&user, n.storage[0], "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "x".into(), invite: None }).unwrap()).unwrap();
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
    let _ = update_raw(&user, plain, "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "plain".into(), invite: None }).unwrap()).unwrap();
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
    let trapped = update_raw(&user, d, "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "trapped".into(), invite: None }).unwrap());
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

fn new_agent(n: &Net, cwd: &Path, name: &str) -> (Agent, Principal) {
    let pem = cwd.join(format!("{name}.pem"));
    keepsake::identity::write_new_ed25519_pem(&pem).unwrap();
    let p = BasicIdentity::from_pem_file(&pem).unwrap().sender().unwrap();
    (agent(&n.url, &pem), p)
}

fn set_config(admin: &Agent, d: Principal, u: dir::ConfigUpdate) -> dir::DirectoryConfig {
    let r: dir::Result<dir::DirectoryConfig> = update(admin, d, "admin_set_config", u);
    r.unwrap()
}

fn set_accepting(admin: &Agent, d: Principal, c: Principal, accepting: bool) -> StorageInfo {
    let bytes = update_raw(admin, d, "admin_set_accepting", candid::encode_args((c, accepting)).unwrap()).unwrap();
    candid::decode_one::<dir::Result<StorageInfo>>(&bytes).unwrap().unwrap()
}

fn state_of(admin: &Agent, d: Principal, c: Principal) -> StorageState {
    storage_of(admin, d).into_iter().find(|s| s.canister_id == c).unwrap().state
}

fn refresh(admin: &Agent, d: Principal) {
    let r: dir::Result<Vec<StorageInfo>> = update(admin, d, "admin_refresh", ());
    r.unwrap();
}

/// What a refused call must leave as it was (cycles and refresh times aside).
fn fingerprint(admin: &Agent, d: Principal) -> String {
    let mut s = status(admin, d);
    s.cycles = 0;
    for i in &mut s.storage {
        i.cycles = 0;
        i.refreshed_at_ns = 0;
    }
    format!("{:?}", (s.storage, s.capsules, s.pending, s.signup, s.config, s.upgrade))
}

fn storage_admin_config(admin: &Agent, c: Principal, u: backend::api::ConfigUpdate) {
    let r = update_raw(admin, c, "admin_set_config", candid::encode_one(u).unwrap()).unwrap();
    let _: candid::Reserved = candid::decode_one(&r).unwrap();
}

fn wait_upgrade_done(admin: &Agent, d: Principal) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let u = status(admin, d).upgrade.unwrap();
        match u.state {
            UpgradeState::Done => return,
            UpgradeState::Failed(m) => panic!("rolling upgrade failed: {m}"),
            UpgradeState::Running => {}
        }
        assert!(std::time::Instant::now() < deadline, "rolling upgrade did not finish: {u:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Every method of `directory.did`'s service.
fn directory_methods() -> Vec<String> {
    let did = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../directory/directory.did")).unwrap();
    let service = &did[did.find("service :").unwrap()..];
    let service = &service[service.find('{').unwrap() + 1..];
    service
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (name, rest) = l.split_once(" : (")?;
            (!name.starts_with("//") && !rest.is_empty()).then(|| name.trim().to_string())
        })
        .collect()
}

/// A directory with three storage canisters for one of the tests below: the admin (a
/// controller), a user, an anonymous agent and the storage canisters in `storage_list`
/// order.
struct Fixture {
    _tmp: tempfile::TempDir,
    cwd: std::path::PathBuf,
    n: Net,
    admin: Agent,
    user: Agent,
    anon: Agent,
    d: Principal,
    order: Vec<Principal>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().to_path_buf();
    keepsake::identity::write_new_ed25519_pem(&cwd.join("me.pem")).unwrap();
    keepsake::identity::write_new_ed25519_pem(&cwd.join("admin.pem")).unwrap();
    let admin_p = BasicIdentity::from_pem_file(cwd.join("admin.pem")).unwrap().sender().unwrap();
    let n = start(&cwd, admin_p);
    let admin = agent(&n.url, &cwd.join("admin.pem"));
    let user = agent(&n.url, &cwd.join("me.pem"));
    let anon = {
        let a = Agent::builder().with_url(&n.url).build().unwrap();
        rt().block_on(a.fetch_root_key()).unwrap();
        a
    };
    let d = n.directory;
    let order: Vec<Principal> = storage_of(&admin, d).iter().map(|s| s.canister_id).collect();
    Fixture { _tmp: tmp, cwd, n, admin, user, anon, d, order }
}


/// Issue 23 item 2: `capsules_locate` (owner, creation time) only to the owner;
/// `capsules_route` gives anyone the storage canister and nothing else.
#[test]
fn locate_tells_the_owner_only_and_route_tells_anyone_the_canister() {
    let f = fixture();
    let Fixture { cwd, n, user, anon, d, .. } = &f;
    let (cwd, d) = (cwd.as_path(), *d);
    // ---- Item 2: capsules_locate tells the owner only; capsules_route tells anyone
    // the storage canister and nothing else.
    let mine = create(user, d, "mine").unwrap();
    let (stranger, _) = new_agent(n, cwd, "stranger");
    for (who, a) in [("a stranger", &stranger), ("anonymous", anon)] {
        let r: dir::Result<CapsuleLocation> = query(a, d, "capsules_locate", candid::encode_one(mine.capsule_id).unwrap());
        assert!(matches!(r, Err(dir::Error::NotFound(_))), "{who} learnt the owner of capsule {}: {r:?}", mine.capsule_id);
        let route: dir::Result<Principal> = query(a, d, "capsules_route", candid::encode_one(mine.capsule_id).unwrap());
        assert_eq!(route.unwrap(), mine.canister_id, "{who} can route");
    }
    let own: dir::Result<CapsuleLocation> = query(user, d, "capsules_locate", candid::encode_one(mine.capsule_id).unwrap());
    assert_eq!(own.unwrap(), mine);
    let missing: dir::Result<Principal> = query(&stranger, d, "capsules_route", candid::encode_one(999_999u64).unwrap());
    assert!(matches!(missing, Err(dir::Error::NotFound(_))), "{missing:?}");
    // The CLI routes through it, for a capsule it has not cached.
    let ls = cli_ok(n, cwd, &["ls", "--capsule", &mine.capsule_id.to_string()]);
    assert!(ls["memories"].as_array().unwrap().is_empty(), "{ls}");

    f.n.net.shutdown().unwrap();
}

/// The shape of issue 23 in `refresh`: Closed is the operator's; a failing refresh
/// does not turn it into Unreachable, so the next refresh does not reopen it.
#[test]
fn closed_is_never_reopened_by_a_failure() {
    let f = fixture();
    let Fixture { admin, d, order, .. } = &f;
    let d = *d;
    let c1 = order[1];
    // ---- Closed is the operator's: a failing refresh does not turn it into
    // Unreachable, and so the next refresh does not turn it into Active.
    set_accepting(admin, d, c1, false);
    mgmt_call(admin, "stop_canister", c1).unwrap();
    refresh(admin, d);
    assert_eq!(state_of(admin, d, c1), StorageState::Closed, "a refresh that could not reach it reopened it halfway");
    mgmt_call(admin, "start_canister", c1).unwrap();
    refresh(admin, d);
    assert_eq!(state_of(admin, d, c1), StorageState::Closed, "a refresh reopened a canister the operator closed");

    f.n.net.shutdown().unwrap();
}

/// Issue 23 item 1: Full by capsule count sticks; a refresh looking at free bytes alone
/// does not make it Active.
#[test]
fn full_by_capsule_count_sticks_across_refreshes() {
    let f = fixture();
    let Fixture { admin, user, d, order, .. } = &f;
    let d = *d;
    let (c0, c1, c2) = (order[0], order[1], order[2]);
    set_accepting(admin, d, c1, false);
    // ---- Item 1b: Full by capsule count sticks. Only c0 takes capsules; it holds at
    // most what it holds now + 1.
    set_accepting(admin, d, c2, false);
    let stats: backend::api::Stats = query(admin, c0, "stats", candid::encode_args(()).unwrap());
    let max = stats.capsules + 1;
    use backend::api::ConfigUpdate as StorageConfig;
    storage_admin_config(admin, c0, StorageConfig { max_capsules: Some(max), ..Default::default() });
    let filler = create(user, d, "fills c0").unwrap();
    assert_eq!(filler.canister_id, c0);
    let refused = create(user, d, "one over").unwrap_err();
    assert!(matches!(refused, dir::Error::NoRoom(_)), "{refused:?}");
    assert_eq!(state_of(admin, d, c0), StorageState::Full);
    refresh(admin, d);
    let st = storage_of(admin, d).into_iter().find(|s| s.canister_id == c0).unwrap();
    assert_eq!(st.state, StorageState::Full, "a refresh made it Active by its free bytes alone: {st:?}");
    assert_eq!((st.capsules_held, st.max_capsules), (Some(max), Some(max)), "{st:?}");
    let before = fingerprint(admin, d);
    let again = create(user, d, "still over").unwrap_err();
    assert!(matches!(again, dir::Error::NoRoom(_)), "{again:?}");
    assert_eq!(fingerprint(admin, d), before, "a refused create changed the directory (and no call was wasted on c0)");
    // Room again: the next look finds it.
    storage_admin_config(admin, c0, StorageConfig { max_capsules: Some(100_000), ..Default::default() });
    refresh(admin, d);
    assert_eq!(state_of(admin, d, c0), StorageState::Active);

    f.n.net.shutdown().unwrap();
}

/// Issue 23 item 3: a create that moved from c0 (stopped) to c2, left pending by a
/// trap, is finished on c2 by the refresh, and nothing is created on c0.
#[test]
fn a_placement_that_moved_leaves_no_orphan() {
    let f = fixture();
    let Fixture { n, admin, user, d, order, .. } = &f;
    let d = *d;
    let (c0, c1, c2) = (order[0], order[1], order[2]);
    use backend::api::ConfigUpdate as StorageConfig;
    // ---- Item 3: a placement that moved from c0 to c2 and was finished by a refresh
    // leaves nothing on c0. c0 is stopped, so the create moves on to c2; the
    // directory's callback of the create on c2 traps, leaving it pending on c2.
    set_accepting(admin, d, c1, false);
    // c0 has more room than c2, so it is tried first.
    storage_admin_config(admin, c2, StorageConfig { max_stored_bytes: Some(100 << 30), ..Default::default() });
    refresh(admin, d);
    mgmt_call(admin, "stop_canister", c0).unwrap();
    let before = status(admin, d);
    // Callbacks: c0's stats (rejected), c2's stats, then the create on c2 traps.
    n.net.exec().with_host(move |h| h.inject_callback_trap(d, 2)).unwrap();
    let trapped = update_raw(user, d, "capsules_create", candid::encode_one(dir::CapsuleCreateArgs { name: "moved".into(), invite: None }).unwrap());
    assert!(trapped.is_err(), "the caller sees the trap: {:?}", trapped.map(|b| candid::decode_one::<dir::Result<CapsuleLocation>>(&b)));
    assert_eq!(status(admin, d).pending, before.pending + 1);
    mgmt_call(admin, "start_canister", c0).unwrap();
    refresh(admin, d);
    let after = status(admin, d);
    assert_eq!((after.capsules, after.pending), (before.capsules + 1, before.pending));
    let list: dir::LocationPage = query(user, d, "capsules_list", candid::encode_args((None::<u64>, None::<u32>)).unwrap());
    for s in order.iter() {
        let mut on = capsules_on(user, *s);
        on.sort();
        let mapped: Vec<u64> = list.capsules.iter().filter(|l| l.canister_id == *s).map(|l| l.capsule_id).collect();
        assert_eq!(on, mapped, "storage canister {s}: no orphan, nothing missing");
    }

    f.n.net.shutdown().unwrap();
}

/// Issue 23 item 4: a rolling upgrade, also one interrupted at that canister and
/// resumed, keeps a canister Closed.
#[test]
fn an_interrupted_rolling_upgrade_keeps_a_canister_closed() {
    let f = fixture();
    let Fixture { n, admin, d, order, .. } = &f;
    let d = *d;
    let (c0, c1) = (order[0], order[1]);
    // ---- Item 4: a rolling upgrade keeps the operator's Closed, also when it is
    // interrupted at that canister and resumed.
    set_accepting(admin, d, c0, false);
    set_accepting(admin, d, c1, false);
    let gz = std::fs::read(keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("backend.wasm.gz")).unwrap();
    let h: dir::Result<serde_bytes::ByteBuf> = update(admin, d, "admin_set_storage_wasm", serde_bytes::ByteBuf::from(gz));
    h.unwrap();
    // The callback of c0's stop traps: the run stops at c0 (Upgrading), then resumes.
    n.net.exec().with_host(move |h| h.inject_callback_trap(d, 1)).unwrap();
    let started: dir::Result<dir::UpgradeStatus> = update(admin, d, "admin_upgrade_storage", ());
    started.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(state_of(admin, d, c0), StorageState::Upgrading);
    let resumed: dir::Result<dir::UpgradeStatus> = update(admin, d, "admin_upgrade_storage", ());
    resumed.unwrap();
    wait_upgrade_done(admin, d);
    assert_eq!(state_of(admin, d, c0), StorageState::Closed, "an interrupted upgrade reopened a closed canister");
    assert_eq!(state_of(admin, d, c1), StorageState::Closed);
    f.n.net.shutdown().unwrap();
}

/// Issue 23 item 4: `admin_set_accepting` while the canister is being upgraded (here:
/// the run stopped at it by a trap) keeps it Upgrading, and holds from when its upgrade
/// ends; closing another canister meanwhile holds too.
#[test]
fn accepting_set_during_an_upgrade_holds_after_it() {
    let f = fixture();
    let Fixture { n, admin, d, order, .. } = &f;
    let d = *d;
    let (c0, c1, c2) = (order[0], order[1], order[2]);
    set_accepting(admin, d, c0, false);
    let raw = std::fs::read(keepsake::embedded::resolve_wasm(None).unwrap().with_file_name("backend.wasm.gz")).unwrap();
    // The operator opens c0 while it is being upgraded: it takes no capsule while
    // stopped, and is Active when its upgrade ends.
    let h: dir::Result<serde_bytes::ByteBuf> = update(admin, d, "admin_set_storage_wasm", serde_bytes::ByteBuf::from(raw));
    h.unwrap();
    n.net.exec().with_host(move |h| h.inject_callback_trap(d, 1)).unwrap();
    let started: dir::Result<dir::UpgradeStatus> = update(admin, d, "admin_upgrade_storage", ());
    started.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let during = set_accepting(admin, d, c0, true);
    assert_eq!(during.state, StorageState::Upgrading, "opened while stopped for its upgrade");
    assert_eq!(state_of(admin, d, c0), StorageState::Upgrading);
    // And closing c1 while the run is at c0 holds too.
    set_accepting(admin, d, c1, false);
    let resumed: dir::Result<dir::UpgradeStatus> = update(admin, d, "admin_upgrade_storage", ());
    resumed.unwrap();
    wait_upgrade_done(admin, d);
    assert_eq!(state_of(admin, d, c0), StorageState::Active, "the operator's choice during the upgrade was lost");
    assert_eq!(state_of(admin, d, c1), StorageState::Closed);
    assert_eq!(state_of(admin, d, c2), StorageState::Active);
    set_accepting(admin, d, c1, true);

    f.n.net.shutdown().unwrap();
}

/// Issue 23 item 1: open sign-up is bounded per window and by a cap on sign-up
/// capsules; invite-only takes single-use, expiring codes; refusals change nothing.
#[test]
fn sign_up_policies_bound_a_flood() {
    let f = fixture();
    let Fixture { cwd, n, admin, user, d, order, .. } = &f;
    let (cwd, d) = (cwd.as_path(), *d);
    // ---- Item 1a: open sign-up, bounded per window (all callers together): fresh
    // principals are refused once the window is used up, and a refusal changes nothing.
    let open = |w: u32, empty: u64| dir::SignupPolicy::Open { max_new_per_window: w, window_secs: 3600, max_empty_capsules: empty };
    // The window already holds the capsules made above: room for 3 more.
    let k = status(admin, d).signup.map_or(0, |s| s.new_in_window);
    set_config(admin, d, dir::ConfigUpdate { signup: Some(open(k + 3, 10_000)), ..Default::default() });
    let fresh: Vec<Agent> = (0..4).map(|i| new_agent(n, cwd, &format!("fresh{i}")).0).collect();
    for (i, a) in fresh.iter().take(3).enumerate() {
        create(a, d, &format!("fresh {i}")).unwrap();
    }
    let before = fingerprint(admin, d);
    let flood = create(&fresh[3], d, "a fourth");
    assert!(matches!(flood, Err(dir::Error::NoRoom(ref m)) if m.contains("max_new_per_window")), "a fresh principal got past the window: {flood:?}");
    assert_eq!(fingerprint(admin, d), before, "a refused create changed the directory");
    assert_eq!(status(admin, d).signup.expect("status shows the sign-up bounds").new_in_window, k + 3);
    // Controllers are not bounded.
    create(admin, d, "operator's").unwrap();
    // The cap on sign-up capsules (placed and pending, every one made by a non-controller).
    let made = status(admin, d).signup.unwrap().signup_capsules;
    set_config(admin, d, dir::ConfigUpdate { signup: Some(open(1000, made + 1)), ..Default::default() });
    create(&fresh[3], d, "the last one").unwrap();
    let before = fingerprint(admin, d);
    let capped = create(user, d, "over the cap").unwrap_err();
    assert!(matches!(capped, dir::Error::NoRoom(ref m) if m.contains("max_empty_capsules")), "{capped:?}");
    assert_eq!(fingerprint(admin, d), before);
    assert_eq!(status(admin, d).signup.unwrap().signup_capsules, made + 1);
    // A create the storage side refuses gives its slot back.
    set_config(admin, d, dir::ConfigUpdate { signup: Some(open(1000, 10_000)), ..Default::default() });
    for c in order.iter() {
        set_accepting(admin, d, *c, false);
    }
    let before = fingerprint(admin, d);
    assert!(matches!(create(user, d, "nowhere").unwrap_err(), dir::Error::NoRoom(_)));
    assert_eq!(fingerprint(admin, d), before, "a NoRoom kept its sign-up slot");
    for c in order.iter() {
        set_accepting(admin, d, *c, true);
    }

    // ---- Item 1a: invite-only: a controller mints single-use, expiring codes.
    set_config(admin, d, dir::ConfigUpdate { signup: Some(dir::SignupPolicy::InviteOnly), ..Default::default() });
    let (invited, _) = new_agent(n, cwd, "invited");
    let no_code = create(&invited, d, "no code").unwrap_err();
    assert!(matches!(no_code, dir::Error::Unauthorized(ref m) if m.contains("invite")), "{no_code:?}");
    let not_mine: dir::Result<Vec<String>> = update(user, d, "admin_mint_invites", dir::MintInvitesArgs { count: 1, ttl_secs: 60 });
    assert!(matches!(not_mine, Err(dir::Error::Unauthorized(_))), "{not_mine:?}");
    let codes: dir::Result<Vec<String>> = update(admin, d, "admin_mint_invites", dir::MintInvitesArgs { count: 2, ttl_secs: 3600 });
    let codes = codes.unwrap();
    assert_eq!(codes.len(), 2);
    assert_ne!(codes[0], codes[1]);
    assert_eq!(status(admin, d).signup.unwrap().invites_live, 2);
    let before = fingerprint(admin, d);
    let bogus = create_with(&invited, d, "bogus", "0123456789abcdef0123456789abcdef").unwrap_err();
    assert!(matches!(bogus, dir::Error::Unauthorized(_)), "{bogus:?}");
    assert_eq!(fingerprint(admin, d), before);
    create_with(&invited, d, "with a code", &codes[0]).unwrap();
    let reused = create_with(&invited, d, "the same code", &codes[0]).unwrap_err();
    assert!(matches!(reused, dir::Error::Unauthorized(_)), "a used code is gone: {reused:?}");
    assert_eq!(status(admin, d).signup.unwrap().invites_live, 1);
    // A refusal for room gives the code back.
    for c in order.iter() {
        set_accepting(admin, d, *c, false);
    }
    assert!(matches!(create_with(&invited, d, "nowhere", &codes[1]).unwrap_err(), dir::Error::NoRoom(_)));
    assert_eq!(status(admin, d).signup.unwrap().invites_live, 1, "the code was given back");
    for c in order.iter() {
        set_accepting(admin, d, *c, true);
    }
    create_with(&invited, d, "second code", &codes[1]).unwrap();
    // Codes expire.
    let short: dir::Result<Vec<String>> = update(admin, d, "admin_mint_invites", dir::MintInvitesArgs { count: 1, ttl_secs: 1 });
    let short = short.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let expired = create_with(&invited, d, "late", &short[0]).unwrap_err();
    assert!(matches!(expired, dir::Error::Unauthorized(ref m) if m.contains("expired")), "{expired:?}");
    create(admin, d, "controllers need no code").unwrap();
    set_config(admin, d, dir::ConfigUpdate { signup: Some(open(1000, 10_000)), ..Default::default() });

    f.n.net.shutdown().unwrap();
}

/// Every method of `directory.did` × {anonymous, user, controller}, then a fuzz of
/// every method by a non-controller.
#[test]
fn directory_access_matrix_and_fuzz() {
    let f = fixture();
    let Fixture { cwd, n, admin, user, anon, d, .. } = &f;
    let (cwd, d) = (cwd.as_path(), *d);
    let mine = create(user, d, "mine").unwrap();
    let (stranger, _) = new_agent(n, cwd, "stranger");
    // ---- The access matrix: every method of directory.did × {anonymous, user,
    // controller}. Refused callers get a typed Unauthorized and change nothing.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Who {
        Anon,
        User,
        Admin,
    }
    let everyone = [Who::Anon, Who::User, Who::Admin];
    let admin_only = [Who::Admin];
    let enc = |b: Result<Vec<u8>, candid::Error>| b.unwrap();
    let table: Vec<(&str, bool, Vec<u8>, &[Who])> = vec![
        ("admin_add_storage", false, enc(candid::encode_one(dir::AddStorageArgs { cycles: Some(u64::MAX), ..Default::default() })), &admin_only),
        ("admin_refresh", false, enc(candid::encode_args(())), &admin_only),
        ("admin_set_accepting", false, enc(candid::encode_args((Principal::from_slice(&[9; 10]), true))), &admin_only),
        ("admin_set_config", false, enc(candid::encode_one(dir::ConfigUpdate::default())), &admin_only),
        ("admin_set_storage_wasm", false, enc(candid::encode_one(serde_bytes::ByteBuf::from(b"not wasm".to_vec()))), &admin_only),
        ("admin_upgrade_storage", false, enc(candid::encode_args(())), &admin_only),
        ("admin_mint_invites", false, enc(candid::encode_one(dir::MintInvitesArgs { count: 1, ttl_secs: 3600 })), &admin_only),
        ("capsules_create", false, enc(candid::encode_one(dir::CapsuleCreateArgs { name: "matrix".into(), invite: None })), &[Who::User, Who::Admin]),
        ("capsules_list", true, enc(candid::encode_args((None::<u64>, None::<u32>))), &everyone),
        ("capsules_locate", true, enc(candid::encode_one(mine.capsule_id)), &[Who::User, Who::Admin]),
        ("capsules_route", true, enc(candid::encode_one(mine.capsule_id)), &everyone),
        ("status", true, enc(candid::encode_args(())), &everyone),
        ("storage_list", true, enc(candid::encode_args(())), &everyone),
    ];
    let methods = directory_methods();
    let mut covered: Vec<String> = table.iter().map(|r| r.0.to_string()).collect();
    covered.sort();
    let mut all = methods.clone();
    all.sort();
    assert_eq!(covered, all, "the access matrix covers every method of directory.did");
    let mut cases = 0;
    for (method, is_query, arg, allowed) in &table {
        for who in everyone {
            let a = match who {
                Who::Anon => anon,
                Who::User => user,
                Who::Admin => admin,
            };
            let before = fingerprint(admin, d);
            let bytes = if *is_query {
                rt().block_on(a.query(&d, *method).with_arg(arg.clone()).call()).map_err(|e| e.to_string())
            } else {
                update_raw(a, d, method, arg.clone())
            };
            let bytes = bytes.unwrap_or_else(|e| panic!("{method} as {who:?}: rejected, not answered: {e}"));
            // Every reply is `variant { Ok; Err : Error }` or a plain record (no Err).
            let err: Option<dir::Error> = candid::decode_one::<Result<candid::Reserved, dir::Error>>(&bytes).ok().and_then(|r| r.err());
            let refused = matches!(err, Some(dir::Error::Unauthorized(_)));
            let expect_allowed = allowed.contains(&who);
            if *method == "capsules_locate" {
                // The owner (user) and controllers see it; others get NotFound.
                assert_eq!(matches!(err, Some(dir::Error::NotFound(_))), !expect_allowed, "{method} as {who:?}: {err:?}");
            } else {
                assert_eq!(!refused, expect_allowed, "{method} as {who:?}: {err:?}");
            }
            if !expect_allowed {
                assert_eq!(fingerprint(admin, d), before, "{method} as {who:?} was refused but changed the directory");
            }
            cases += 1;
        }
    }
    eprintln!("directory access matrix: {} methods x 3 callers = {cases} cases", table.len());

    // ---- Fuzz: every method, as a non-controller, with random bytes and with random
    // values of its argument types: never a change, and the directory keeps answering.
    let mut seed = 0x2323_2323_dead_beefu64;
    let mut next = move |below: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % below as u64) as usize
    };
    let before = fingerprint(admin, d);
    let mut calls = 0;
    for (method, is_query, arg, _) in &table {
        if *method == "capsules_create" {
            continue; // it creates by design; its bounds are tested above
        }
        for round in 0..12 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = next(64);
                (0..len).map(|_| next(256) as u8).collect()
            } else {
                // The valid argument with a few bytes flipped.
                let mut b = arg.clone();
                for _ in 0..1 + next(3) {
                    let i = next(b.len());
                    b[i] = next(256) as u8;
                }
                b
            };
            let _ = if *is_query {
                rt().block_on(stranger.query(&d, *method).with_arg(bytes).call()).map_err(|e| e.to_string())
            } else {
                update_raw(&stranger, d, method, bytes)
            };
            calls += 1;
        }
    }
    assert_eq!(fingerprint(admin, d), before, "fuzzed calls by a non-controller changed the directory");
    create(user, d, "after the fuzz").unwrap();
    eprintln!("directory fuzz: {calls} calls, no change");
    f.n.net.shutdown().unwrap();
}
