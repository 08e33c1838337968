//! The management canister: creating, installing (install / reinstall / upgrade),
//! status, settings, start / stop / delete, from outside and from a canister, and its
//! refusals for callers that are not controllers.

mod common;

use common::*;
use ic_host::management_types::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult, CanisterStatusType, CreateCanisterArgs,
    InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs, UpdateSettingsArgs,
};
use ic_host::{reject_code, CanisterStatus, ErrorCode, Host, Principal, Reject, DEFAULT_CONTROLLER};

/// `set` writes its i64 argument to the heap and to stable memory; `read` returns
/// [heap, stable (or -1), stable pages, canister_status, init ran, post_upgrade ran].
fn counter_canister(version: i64) -> Vec<u8> {
    canister(&format!(
        r#"
  (func (export "canister_init") (i64.store (i32.const 120) (i64.const 1)))
  (func (export "canister_post_upgrade") (i64.store (i32.const 128) (i64.const {version})))
  (func (export "canister_update set")
    (i64.store (i32.const 100) (call $arg_i64))
    (if (i64.eqz (call $stable_size)) (then (drop (call $stable_grow (i64.const 1)))))
    (call $stable_write (i64.const 0) (i64.const 100) (i64.const 8))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_query read")
    (i64.store (i32.const 200) (i64.load (i32.const 100)))
    (i64.store (i32.const 208) (i64.const -1))
    (if (i64.ne (call $stable_size) (i64.const 0))
      (then (call $stable_read (i64.const 208) (i64.const 0) (i64.const 8))))
    (i64.store (i32.const 216) (call $stable_size))
    (i64.store (i32.const 224) (i64.extend_i32_u (call $canister_status)))
    (i64.store (i32.const 232) (i64.load (i32.const 120)))
    (i64.store (i32.const 240) (i64.load (i32.const 128)))
    (call $reply_bytes (i32.const 200) (i32.const 48)))
"#
    ))
}

fn stranger() -> Principal {
    Principal::from_slice(&[0x5e, 0x01])
}

fn install_args(id: Principal, mode: CanisterInstallMode, wasm: Vec<u8>) -> InstallCodeArgs {
    InstallCodeArgs { mode, canister_id: id, wasm_module: wasm, arg: Vec::new(), sender_canister_version: None }
}

fn read(host: &mut Host, id: Principal) -> Vec<i64> {
    i64s(&host.query_call(id, user(), "read", &[]).reply.unwrap())
}

fn mgmt<A: candid::CandidType>(host: &mut Host, caller: Principal, method: &str, arg: &A) -> Result<(), Reject> {
    host.management::<_, ()>(caller, method, arg)
}

#[test]
fn install_reinstall_upgrade_status_and_settings() {
    let mut host = Host::in_memory();
    let created: CanisterIdRecord = host
        .management(user(), "provisional_create_canister_with_cycles", &ProvisionalCreateCanisterWithCyclesArgs {
            amount: Some(5_000u64.into()),
            ..Default::default()
        })
        .unwrap();
    let id = created.canister_id;
    assert_eq!(id, ic_host::canister_id_of(1), "the first id a host hands out");
    // The creator controls it; it is empty.
    let status: CanisterStatusResult = host.management(user(), "canister_status", &CanisterIdRecord { canister_id: id }).unwrap();
    assert_eq!(status.settings.controllers, vec![user()]);
    assert_eq!((status.module_hash, status.cycles), (None, 5_000u64.into()));
    let e = host.update_call(id, user(), "set", &i64_arg(1)).reply.unwrap_err();
    assert_eq!(e.code, reject_code::CANISTER_ERROR, "{e}");

    mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Install, counter_canister(1))).unwrap();
    assert_eq!(host.update_call(id, user(), "set", &i64_arg(7)).reply, Ok(vec![]));
    assert_eq!(read(&mut host, id), vec![7, 7, 1, 1, 1, 0]);
    // Install on a canister that has code: refused.
    let e = mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Install, counter_canister(1))).unwrap_err();
    assert!(e.message.contains("not empty"), "{e}");

    // Upgrade: heap gone, stable kept, post_upgrade ran.
    let v2 = counter_canister(2);
    mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Upgrade(None), v2.clone())).unwrap();
    assert_eq!(read(&mut host, id), vec![0, 7, 1, 1, 0, 2]);
    let status: CanisterStatusResult = host.management(user(), "canister_status", &CanisterIdRecord { canister_id: id }).unwrap();
    assert_eq!(status.module_hash.unwrap(), sha256(&v2));
    assert_eq!(status.status, CanisterStatusType::Running);

    // A gzip-compressed module (what build tools ship, `.wasm.gz`) installs like its
    // contents; module_hash is the hash of the bytes installed. A broken one is refused.
    let v2_gz = gzip(&counter_canister(2));
    mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Upgrade(None), v2_gz.clone())).unwrap();
    assert_eq!(read(&mut host, id), vec![0, 7, 1, 1, 0, 2]);
    let status: CanisterStatusResult = host.management(user(), "canister_status", &CanisterIdRecord { canister_id: id }).unwrap();
    assert_eq!(status.module_hash.unwrap(), sha256(&v2_gz));
    let broken = v2_gz[..v2_gz.len() / 2].to_vec();
    let e = mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Upgrade(None), broken)).unwrap_err();
    assert_eq!((e.code, e.error_code), (reject_code::CANISTER_ERROR, Some(ErrorCode::CanisterInvalidWasm)), "{e}");
    assert_eq!(read(&mut host, id), vec![0, 7, 1, 1, 0, 2], "nothing changed");

    // Reinstall: heap and stable memory wiped, init ran.
    ok_call(&mut host, id, "set", 9);
    mgmt(&mut host, user(), "install_code", &install_args(id, CanisterInstallMode::Reinstall, counter_canister(3))).unwrap();
    assert_eq!(read(&mut host, id), vec![0, -1, 0, 1, 1, 0]);

    // New controllers: the new one may, the old one may not.
    let settings = UpdateSettingsArgs {
        canister_id: id,
        settings: CanisterSettings { controllers: Some(vec![stranger()]), ..Default::default() },
        sender_canister_version: None,
    };
    mgmt(&mut host, user(), "update_settings", &settings).unwrap();
    assert!(mgmt(&mut host, user(), "stop_canister", &CanisterIdRecord { canister_id: id }).is_err());
    mgmt(&mut host, stranger(), "stop_canister", &CanisterIdRecord { canister_id: id }).unwrap();
}

fn ok_call(host: &mut Host, id: Principal, method: &str, v: i64) {
    assert_eq!(host.update_call(id, user(), method, &i64_arg(v)).reply, Ok(vec![]));
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(b).unwrap();
    z.finish().unwrap()
}

fn sha256(b: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(b).to_vec()
}

#[test]
fn stop_start_and_delete() {
    let mut host = Host::new(&counter_canister(1), &[]).unwrap();
    let id = host.canister_id();
    let rec = CanisterIdRecord { canister_id: id };
    ok_call(&mut host, id, "set", 5);
    mgmt(&mut host, DEFAULT_CONTROLLER, "stop_canister", &rec).unwrap();
    assert_eq!(host.status(id), Some(CanisterStatus::Stopped));
    // A stopped canister takes no calls; its state is kept.
    for r in [host.update_call(id, user(), "set", &i64_arg(6)), host.query_call(id, user(), "read", &[])] {
        let e = r.reply.unwrap_err();
        assert_eq!(e.code, reject_code::CANISTER_ERROR);
        assert!(e.message.contains("is stopped"), "{e}");
    }
    mgmt(&mut host, DEFAULT_CONTROLLER, "start_canister", &rec).unwrap();
    assert_eq!(read(&mut host, id)[..4], [5, 5, 1, 1]);

    // Delete needs a stopped canister.
    let e = mgmt(&mut host, DEFAULT_CONTROLLER, "delete_canister", &rec).unwrap_err();
    assert!(e.message.contains("must be stopped"), "{e}");
    mgmt(&mut host, DEFAULT_CONTROLLER, "stop_canister", &rec).unwrap();
    mgmt(&mut host, DEFAULT_CONTROLLER, "delete_canister", &rec).unwrap();
    assert!(!host.canister_exists(id));
    let e = host.update_call(id, user(), "set", &i64_arg(1)).reply.unwrap_err();
    assert_eq!(e.code, reject_code::DESTINATION_INVALID);
    // Its id is not handed out again.
    let created: CanisterIdRecord =
        host.management(user(), "provisional_create_canister_with_cycles", &ProvisionalCreateCanisterWithCyclesArgs::default()).unwrap();
    assert_ne!(created.canister_id, id);
}

#[test]
fn only_controllers_may_manage_a_canister() {
    let mut host = Host::new(&counter_canister(1), &[]).unwrap();
    let id = host.canister_id();
    ok_call(&mut host, id, "set", 5);
    let rec = CanisterIdRecord { canister_id: id };
    let settings = UpdateSettingsArgs {
        canister_id: id,
        settings: CanisterSettings { controllers: Some(vec![stranger()]), ..Default::default() },
        sender_canister_version: None,
    };
    let refusals = [
        mgmt(&mut host, stranger(), "install_code", &install_args(id, CanisterInstallMode::Reinstall, counter_canister(2))),
        mgmt(&mut host, stranger(), "install_code", &install_args(id, CanisterInstallMode::Upgrade(None), counter_canister(2))),
        mgmt(&mut host, stranger(), "update_settings", &settings),
        mgmt(&mut host, stranger(), "stop_canister", &rec),
        mgmt(&mut host, stranger(), "start_canister", &rec),
        mgmt(&mut host, stranger(), "delete_canister", &rec),
        host.management::<_, CanisterStatusResult>(stranger(), "canister_status", &rec).map(|_| ()),
        host.management::<_, CanisterStatusResult>(Principal::anonymous(), "canister_status", &rec).map(|_| ()),
    ];
    for r in refusals {
        let e = r.unwrap_err();
        assert_eq!(e.code, reject_code::CANISTER_ERROR, "{e}");
        assert!(e.message.contains("Only the controllers"), "{e}");
        assert_eq!(e.error_code, Some(ErrorCode::CanisterInvalidController), "{e}");
    }
    // Nothing changed.
    assert_eq!(host.controllers(), &[DEFAULT_CONTROLLER]);
    assert_eq!(host.status(id), Some(CanisterStatus::Running));
    assert_eq!(read(&mut host, id), vec![5, 5, 1, 1, 1, 0]);
    // create_canister is for canisters; an unknown method and a bad argument are refused.
    let e = host.management::<_, CanisterIdRecord>(user(), "create_canister", &CreateCanisterArgs::default()).unwrap_err();
    assert!(e.message.contains("only be called by canisters"), "{e}");
    assert!(mgmt(&mut host, DEFAULT_CONTROLLER, "no_such_method", &rec).is_err());
    let e = host.update_call(Principal::management_canister(), DEFAULT_CONTROLLER, "stop_canister", b"junk").reply.unwrap_err();
    assert_eq!(e.code, reject_code::CANISTER_ERROR, "{e}");
    assert_eq!(host.status(id), Some(CanisterStatus::Running));
}

#[test]
fn per_canister_accessors_for_a_network_front() {
    // A module with canister metadata, as ic-wasm writes it.
    let mut wasm = counter_canister(1);
    let name = b"icp:public candid:service";
    let body = b"service : {}";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(body);
    wasm.push(0); // custom section id
    wasm.push(section.len() as u8);
    wasm.extend_from_slice(&section);
    let host = Host::new(&wasm, &[]).unwrap();
    let id = host.canister_id();
    assert_eq!(host.canister_custom_section(id, "icp:public candid:service"), Some(&body[..]));
    assert_eq!(host.canister_custom_section(id, "icp:public other"), None);
    assert_eq!(host.canister_controllers(id), Some(&[DEFAULT_CONTROLLER][..]));
    assert_eq!(host.canister_certified_data(id), Some(&[][..]));
    assert_eq!(host.canister_controllers(ic_host::canister_id_of(99)), None);
}
