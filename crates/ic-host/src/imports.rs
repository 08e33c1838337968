//! The `ic0` system API as wasmtime host functions.
//!
//! wasm32 canisters: `usize` parameters are `i32` (taken as `u32` here).
//! Every misuse (out-of-bounds copy, API unavailable in this message kind,
//! double reply, ...) traps the canister; nothing here panics.

use std::collections::HashSet;

use candid::Principal;
use wasmtime::{Caller, Extern, Linker, Module};

use crate::metering;
use crate::rewrite::MEMORY_EXPORT;
use crate::stable::StableError;
use crate::state::{Callbacks, MessageKind as K, OutgoingCall, Response, StoreData};

type C<'a> = Caller<'a, StoreData>;
type R<T> = wasmtime::Result<T>;

/// Maximum reply / call payload (the IC's 2 MiB inter-canister and ingress reply limit).
pub(crate) const MAX_PAYLOAD: usize = 2 * 1024 * 1024;

/// Raises a canister trap with `message`.
fn trap<T>(caller: &mut C<'_>, message: impl Into<String>) -> R<T> {
    let message = message.into();
    caller.data_mut().msg.host_trap = Some(message.clone());
    Err(wasmtime::Error::msg(message))
}

/// Charges `ic0.<api>` copying `bytes` bytes against the message's instructions, as the
/// IC does (see [`crate::metering`]). Running out traps like the instruction limit does.
fn charge(caller: &mut C<'_>, api: &str, bytes: u64) -> R<()> {
    charge_instructions(caller, metering::cost(api, bytes))
}

fn charge_instructions(caller: &mut C<'_>, cost: u64) -> R<()> {
    let fuel = caller.get_fuel()?;
    if fuel < cost {
        caller.set_fuel(0)?;
        let limit = caller.data().msg.fuel_limit;
        return trap(
            caller,
            format!("instruction limit exceeded: Canister exceeded the limit of {limit} instructions for single message execution."),
        );
    }
    caller.set_fuel(fuel - cost)?;
    caller.data_mut().msg.system_api_instructions += cost;
    Ok(())
}

/// Checks the message's limits on dirtied and accessed stable pages for an access to
/// `[offset, offset + size)` (a write when `write`), and charges the pages it dirties
/// for the first time ([`metering::DIRTY_PAGE_OVERHEAD`] each).
fn stable_pages(caller: &mut C<'_>, offset: u64, size: u64, write: bool) -> R<()> {
    let d = caller.data();
    let (new_dirty, new_accessed) = d.canister.stable.unseen_pages(offset, size);
    let (dirtied, accessed) = d.canister.stable.message_pages();
    let kb = |pages: u64| pages * 4;
    if accessed + new_accessed > d.msg.accessed_page_limit {
        let limit = d.msg.accessed_page_limit;
        return trap(
            caller,
            format!("Exceeded the limit for the number of accessed pages in the stable memory in a single message execution: limit {} KB.", kb(limit)),
        );
    }
    if !write {
        return Ok(());
    }
    if dirtied + new_dirty > d.msg.dirty_page_limit {
        let limit = d.msg.dirty_page_limit;
        return trap(
            caller,
            format!("Exceeded the limit for the number of modified pages in the stable memory in a single execution: limit {} KB.", kb(limit)),
        );
    }
    charge_instructions(caller, new_dirty.saturating_mul(metering::DIRTY_PAGE_OVERHEAD))
}

fn require(caller: &mut C<'_>, api: &str, allowed: &[K]) -> R<()> {
    let kind = caller.data().msg.kind;
    if allowed.contains(&kind) {
        Ok(())
    } else {
        trap(caller, format!("\"ic0.{api}\" cannot be executed in {kind:?} mode"))
    }
}

fn memory(caller: &mut C<'_>) -> R<wasmtime::Memory> {
    match caller.get_export(MEMORY_EXPORT) {
        Some(Extern::Memory(m)) => Ok(m),
        _ => trap(caller, "canister has no memory"),
    }
}

/// Reads `size` bytes at `src` from the canister's memory.
fn read_mem(caller: &mut C<'_>, api: &str, src: u64, size: u64) -> R<Vec<u8>> {
    let mem = memory(caller)?;
    let data = mem.data(&*caller);
    let range = usize::try_from(src)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, n)| Some(s..s.checked_add(n)?))
        .filter(|r| r.end <= data.len());
    match range {
        Some(r) => Ok(data[r].to_vec()),
        None => trap(caller, format!("ic0.{api}: memory access out of bounds (src={src}, size={size})")),
    }
}

/// Writes `bytes` into the canister's memory at `dst`.
fn write_mem(caller: &mut C<'_>, api: &str, dst: u64, bytes: &[u8]) -> R<()> {
    let mem = memory(caller)?;
    let data = mem.data_mut(&mut *caller);
    let range = usize::try_from(dst).ok().and_then(|d| Some(d..d.checked_add(bytes.len())?));
    match range.filter(|r| r.end <= data.len()) {
        Some(r) => {
            data[r].copy_from_slice(bytes);
            Ok(())
        }
        None => trap(caller, format!("ic0.{api}: memory access out of bounds (dst={dst}, size={})", bytes.len())),
    }
}

/// The common `*_copy(dst, offset, size)` shape: copies `src[offset..offset+size]` to `dst`.
fn copy_out(caller: &mut C<'_>, api: &str, src: &[u8], dst: u32, offset: u32, size: u32) -> R<()> {
    let (offset, size) = (offset as usize, size as usize);
    match offset.checked_add(size).filter(|&end| end <= src.len()) {
        Some(end) => {
            let bytes = src[offset..end].to_vec();
            write_mem(caller, api, dst.into(), &bytes)
        }
        None => trap(
            caller,
            format!("ic0.{api}: source out of bounds (offset={offset}, size={size}, length={})", src.len()),
        ),
    }
}

fn write_u128(caller: &mut C<'_>, api: &str, dst: u32, v: u128) -> R<()> {
    write_mem(caller, api, dst.into(), &v.to_le_bytes())
}

const ARG_KINDS: &[K] = &[K::Init, K::PostUpgrade, K::Update, K::Query, K::ReplicatedQuery, K::ReplyCallback, K::InspectMessage];
const RESPOND_KINDS: &[K] = &[K::Update, K::Query, K::ReplicatedQuery, K::ReplyCallback, K::RejectCallback];
const CALL_KINDS: &[K] = &[K::Update, K::ReplyCallback, K::RejectCallback, K::GlobalTimer];
const STATE_KINDS: &[K] = &[K::Init, K::PreUpgrade, K::PostUpgrade, K::Update, K::ReplyCallback, K::RejectCallback, K::Cleanup, K::GlobalTimer];
const METHOD_NAME_KINDS: &[K] = &[K::InspectMessage, K::Update, K::Query, K::ReplicatedQuery];

/// A fixed, fake subnet id reported by `ic0.subnet_self_*`.
const SUBNET_ID: &[u8] = &[0x1d, 0x1c, 0x4a, 0x8a, 0x2b, 0x02, 0x01];

fn respond(caller: &mut C<'_>, api: &str, response: Response) -> R<()> {
    require(caller, api, RESPOND_KINDS)?;
    let msg = &mut caller.data_mut().msg;
    if !msg.can_respond || msg.response.is_some() {
        return trap(caller, format!("ic0.{api}: the call was already replied to or rejected"));
    }
    msg.response = Some(response);
    Ok(())
}

/// The canister-memory range `[start, start + size)`, if it is in bounds.
fn mem_range(len: usize, start: u64, size: u64) -> Option<std::ops::Range<usize>> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    (end <= len).then_some(start..end)
}

fn stable_write(caller: &mut C<'_>, api: &str, offset: u64, src: u64, size: u64) -> R<()> {
    if offset.checked_add(size).is_some_and(|end| end <= caller.data().canister.stable.size_bytes()) {
        stable_pages(caller, offset, size, true)?;
    }
    let mem = memory(caller)?;
    let (data, store) = mem.data_and_store_mut(&mut *caller);
    let Some(range) = mem_range(data.len(), src, size) else {
        return trap(caller, format!("ic0.{api}: memory access out of bounds (src={src}, size={size})"));
    };
    store.msg.stable_written += size;
    let r = store.canister.stable.write(offset, &data[range]);
    stable_result(caller, api, r)
}

fn stable_result(caller: &mut C<'_>, api: &str, r: Result<(), StableError>) -> R<()> {
    match r {
        Ok(()) => Ok(()),
        Err(StableError::OutOfBounds) => trap(caller, format!("ic0.{api}: stable memory out of bounds")),
        Err(StableError::Io(e)) => trap(caller, format!("ic0.{api}: ic-host could not read its page store: {e}")),
    }
}

fn stable_read(caller: &mut C<'_>, api: &str, dst: u64, offset: u64, size: u64) -> R<()> {
    if offset.checked_add(size).is_some_and(|end| end <= caller.data().canister.stable.size_bytes()) {
        stable_pages(caller, offset, size, false)?;
    }
    let mem = memory(caller)?;
    let (data, store) = mem.data_and_store_mut(&mut *caller);
    let Some(range) = mem_range(data.len(), dst, size) else {
        return trap(caller, format!("ic0.{api}: memory access out of bounds (dst={dst}, size={size})"));
    };
    store.msg.stable_read += size;
    let r = store.canister.stable.read(offset, &mut data[range]);
    stable_result(caller, api, r)
}

/// Builds a linker with every supported `ic0` function, plus trapping stubs
/// for any other function import of `module`.
pub(crate) fn linker(module: &Module) -> wasmtime::Result<Linker<StoreData>> {
    let mut l: Linker<StoreData> = Linker::new(module.engine());
    let mut defined: HashSet<&'static str> = HashSet::new();
    macro_rules! def {
        ($name:literal, $f:expr) => {{
            defined.insert($name);
            l.func_wrap("ic0", $name, $f)?;
        }};
    }

    // --- message arguments, caller, method name ---
    def!("msg_arg_data_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_arg_data_size", 0)?;
        require(&mut c, "msg_arg_data_size", ARG_KINDS)?;
        Ok(c.data().msg.arg.len() as u32)
    });
    def!("msg_arg_data_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_arg_data_copy", size.into())?;
        require(&mut c, "msg_arg_data_copy", ARG_KINDS)?;
        let arg = std::mem::take(&mut c.data_mut().msg.arg);
        let r = copy_out(&mut c, "msg_arg_data_copy", &arg, dst, off, size);
        c.data_mut().msg.arg = arg;
        r
    });
    def!("msg_caller_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_caller_size", 0)?;
        Ok(c.data().msg.caller.len() as u32)
    });
    def!("msg_caller_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_caller_copy", size.into())?;
        let src = c.data().msg.caller.clone();
        copy_out(&mut c, "msg_caller_copy", &src, dst, off, size)
    });
    def!("msg_caller_info_data_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_caller_info_data_size", 0)?;
        Ok(0)
    });
    def!("msg_caller_info_data_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_caller_info_data_copy", size.into())?;
        copy_out(&mut c, "msg_caller_info_data_copy", &[], dst, off, size)
    });
    def!("msg_caller_info_signer_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_caller_info_signer_size", 0)?;
        Ok(0)
    });
    def!("msg_caller_info_signer_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_caller_info_signer_copy", size.into())?;
        copy_out(&mut c, "msg_caller_info_signer_copy", &[], dst, off, size)
    });
    def!("msg_method_name_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_method_name_size", 0)?;
        require(&mut c, "msg_method_name_size", METHOD_NAME_KINDS)?;
        Ok(c.data().msg.method.len() as u32)
    });
    def!("msg_method_name_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_method_name_copy", size.into())?;
        require(&mut c, "msg_method_name_copy", METHOD_NAME_KINDS)?;
        let src = c.data().msg.method.clone().into_bytes();
        copy_out(&mut c, "msg_method_name_copy", &src, dst, off, size)
    });
    def!("msg_deadline", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, "msg_deadline", 0)?;
        Ok(0)
    });

    // --- responses ---
    def!("msg_reject_code", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_reject_code", 0)?;
        require(&mut c, "msg_reject_code", &[K::ReplyCallback, K::RejectCallback])?;
        Ok(c.data().msg.reject.as_ref().map_or(0, |r| r.0))
    });
    def!("msg_reject_msg_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "msg_reject_msg_size", 0)?;
        require(&mut c, "msg_reject_msg_size", &[K::RejectCallback])?;
        Ok(c.data().msg.reject.as_ref().map_or(0, |r| r.1.len() as u32))
    });
    def!("msg_reject_msg_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_reject_msg_copy", size.into())?;
        require(&mut c, "msg_reject_msg_copy", &[K::RejectCallback])?;
        let src = c.data().msg.reject.as_ref().map(|r| r.1.clone().into_bytes()).unwrap_or_default();
        copy_out(&mut c, "msg_reject_msg_copy", &src, dst, off, size)
    });
    def!("msg_reply_data_append", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_reply_data_append", size.into())?;
        require(&mut c, "msg_reply_data_append", RESPOND_KINDS)?;
        let msg = &c.data().msg;
        if !msg.can_respond || msg.response.is_some() {
            return trap(&mut c, "ic0.msg_reply_data_append: the call was already replied to or rejected");
        }
        let total = msg.reply_buf.len() + size as usize;
        if total > MAX_PAYLOAD {
            return trap(
                &mut c,
                format!("ic0.msg_reply_data_append: application payload size ({total}) cannot be larger than {MAX_PAYLOAD}"),
            );
        }
        let bytes = read_mem(&mut c, "msg_reply_data_append", src.into(), size.into())?;
        c.data_mut().msg.reply_buf.extend_from_slice(&bytes);
        Ok(())
    });
    def!("msg_reply", |mut c: C<'_>| -> R<()> {
        charge(&mut c, "msg_reply", 0)?;
        let data = std::mem::take(&mut c.data_mut().msg.reply_buf);
        respond(&mut c, "msg_reply", Response::Reply(data))
    });
    def!("msg_reject", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "msg_reject", size.into())?;
        let bytes = read_mem(&mut c, "msg_reject", src.into(), size.into())?;
        let Ok(text) = String::from_utf8(bytes) else {
            return trap(&mut c, "ic0.msg_reject: the reject message is not valid UTF-8");
        };
        respond(&mut c, "msg_reject", Response::Reject(text))
    });
    def!("accept_message", |mut c: C<'_>| -> R<()> {
        charge(&mut c, "accept_message", 0)?;
        require(&mut c, "accept_message", &[K::InspectMessage])?;
        if c.data().msg.accepted {
            return trap(&mut c, "ic0.accept_message: message already accepted");
        }
        c.data_mut().msg.accepted = true;
        Ok(())
    });

    // --- cycles (balances and transfers; the host charges no cycles for execution) ---
    def!("msg_cycles_available128", |mut c: C<'_>, dst: u32| -> R<()> {
        charge(&mut c, "msg_cycles_available128", 0)?;
        let v = c.data().msg.cycles_available;
        write_u128(&mut c, "msg_cycles_available128", dst, v)
    });
    def!("msg_cycles_refunded128", |mut c: C<'_>, dst: u32| -> R<()> {
        charge(&mut c, "msg_cycles_refunded128", 0)?;
        require(&mut c, "msg_cycles_refunded128", &[K::ReplyCallback, K::RejectCallback])?;
        let v = c.data().msg.cycles_refunded;
        write_u128(&mut c, "msg_cycles_refunded128", dst, v)
    });
    def!("msg_cycles_accept128", |mut c: C<'_>, hi: u64, lo: u64, dst: u32| -> R<()> {
        charge(&mut c, "msg_cycles_accept128", 0)?;
        require(&mut c, "msg_cycles_accept128", &[K::Update, K::ReplyCallback, K::RejectCallback])?;
        let max = (u128::from(hi) << 64) | u128::from(lo);
        let d = c.data_mut();
        let n = d.msg.cycles_available.min(max);
        d.msg.cycles_available -= n;
        d.canister.cycle_balance = d.canister.cycle_balance.saturating_add(n);
        write_u128(&mut c, "msg_cycles_accept128", dst, n)
    });
    def!("cycles_burn128", |mut c: C<'_>, hi: u64, lo: u64, dst: u32| -> R<()> {
        charge(&mut c, "cycles_burn128", 0)?;
        require(&mut c, "cycles_burn128", STATE_KINDS)?;
        let amount = (u128::from(hi) << 64) | u128::from(lo);
        let d = c.data_mut();
        let n = d.canister.cycle_balance.min(amount);
        d.canister.cycle_balance -= n;
        write_u128(&mut c, "cycles_burn128", dst, n)
    });
    def!("canister_cycle_balance128", |mut c: C<'_>, dst: u32| -> R<()> {
        charge(&mut c, "canister_cycle_balance128", 0)?;
        let b = c.data().canister.cycle_balance;
        write_u128(&mut c, "canister_cycle_balance128", dst, b)
    });
    def!("canister_liquid_cycle_balance128", |mut c: C<'_>, dst: u32| -> R<()> {
        charge(&mut c, "canister_liquid_cycle_balance128", 0)?;
        let b = c.data().canister.cycle_balance;
        write_u128(&mut c, "canister_liquid_cycle_balance128", dst, b)
    });
    def!("cost_call", |mut c: C<'_>, _a: u64, _b: u64, dst: u32| -> R<()> {
        charge(&mut c, "cost_call", 0)?;
        write_u128(&mut c, "cost_call", dst, 0)
    });
    def!("cost_create_canister", |mut c: C<'_>, dst: u32| -> R<()> {
        charge(&mut c, "cost_create_canister", 0)?;
        write_u128(&mut c, "cost_create_canister", dst, 0)
    });
    def!("cost_http_request", |mut c: C<'_>, _a: u64, _b: u64, dst: u32| -> R<()> {
        charge(&mut c, "cost_http_request", 0)?;
        write_u128(&mut c, "cost_http_request", dst, 0)
    });
    def!("cost_http_request_v2", |mut c: C<'_>, _src: u32, _size: u32, dst: u32| -> R<()> {
        charge(&mut c, "cost_http_request_v2", 0)?;
        write_u128(&mut c, "cost_http_request_v2", dst, 0)
    });
    def!("cost_sign_with_ecdsa", |mut c: C<'_>, _s: u32, _n: u32, _k: u32, dst: u32| -> R<u32> {
        charge(&mut c, "cost_sign_with_ecdsa", 0)?;
        write_u128(&mut c, "cost_sign_with_ecdsa", dst, 0).map(|_| 0)
    });
    def!("cost_sign_with_schnorr", |mut c: C<'_>, _s: u32, _n: u32, _k: u32, dst: u32| -> R<u32> {
        charge(&mut c, "cost_sign_with_schnorr", 0)?;
        write_u128(&mut c, "cost_sign_with_schnorr", dst, 0).map(|_| 0)
    });
    def!("cost_vetkd_derive_key", |mut c: C<'_>, _s: u32, _n: u32, _k: u32, dst: u32| -> R<u32> {
        charge(&mut c, "cost_vetkd_derive_key", 0)?;
        write_u128(&mut c, "cost_vetkd_derive_key", dst, 0).map(|_| 0)
    });

    // --- canister / subnet / environment ---
    def!("canister_self_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "canister_self_size", 0)?;
        Ok(c.data().canister.canister_id.as_slice().len() as u32)
    });
    def!("canister_self_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "canister_self_copy", size.into())?;
        let id = c.data().canister.canister_id;
        copy_out(&mut c, "canister_self_copy", id.as_slice(), dst, off, size)
    });
    def!("canister_status", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "canister_status", 0)?;
        Ok(c.data().canister.status.code())
    });
    def!("canister_version", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, "canister_version", 0)?;
        Ok(c.data().canister.canister_version)
    });
    def!("subnet_self_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "subnet_self_size", 0)?;
        Ok(SUBNET_ID.len() as u32)
    });
    def!("subnet_self_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "subnet_self_copy", size.into())?;
        copy_out(&mut c, "subnet_self_copy", SUBNET_ID, dst, off, size)
    });
    def!("subnet_self_node_count", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "subnet_self_node_count", 0)?;
        Ok(13)
    });
    def!("root_key_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "root_key_size", 0)?;
        Ok(0)
    });
    def!("root_key_copy", |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
        charge(&mut c, "root_key_copy", size.into())?;
        copy_out(&mut c, "root_key_copy", &[], dst, off, size)
    });
    def!("env_var_count", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "env_var_count", 0)?;
        Ok(0)
    });
    def!("env_var_name_size", |mut c: C<'_>, i: u32| -> R<u32> {
        charge(&mut c, "env_var_name_size", 0)?;
        trap(&mut c, format!("ic0.env_var_name_size: index {i} out of bounds"))
    });
    def!("env_var_name_copy", |mut c: C<'_>, i: u32, _d: u32, _o: u32, _s: u32| -> R<()> {
        charge(&mut c, "env_var_name_copy", 0)?;
        trap(&mut c, format!("ic0.env_var_name_copy: index {i} out of bounds"))
    });
    def!("env_var_name_exists", |mut c: C<'_>, _s: u32, _n: u32| -> R<u32> {
        charge(&mut c, "env_var_name_exists", 0)?;
        Ok(0)
    });
    def!("env_var_value_size", |mut c: C<'_>, _s: u32, _n: u32| -> R<u32> {
        charge(&mut c, "env_var_value_size", 0)?;
        trap(&mut c, "ic0.env_var_value_size: no such environment variable")
    });
    def!("env_var_value_copy", |mut c: C<'_>, _s: u32, _n: u32, _d: u32, _o: u32, _z: u32| -> R<()> {
        charge(&mut c, "env_var_value_copy", 0)?;
        trap(&mut c, "ic0.env_var_value_copy: no such environment variable")
    });
    def!("time", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, "time", 0)?;
        Ok(c.data().msg.time)
    });
    def!("global_timer_set", |mut c: C<'_>, ts: u64| -> R<u64> {
        charge(&mut c, "global_timer_set", 0)?;
        require(&mut c, "global_timer_set", STATE_KINDS)?;
        Ok(std::mem::replace(&mut c.data_mut().canister.global_timer, ts))
    });
    def!("performance_counter", |mut c: C<'_>, kind: u32| -> R<u64> {
        charge(&mut c, "performance_counter", 0)?;
        let used = c.data().msg.fuel_limit.saturating_sub(c.get_fuel().unwrap_or(0));
        match kind {
            0 => Ok(used),
            1 => Ok(used + c.data().msg.context_instructions),
            _ => trap(&mut c, format!("ic0.performance_counter: unknown counter type {kind}")),
        }
    });
    def!("is_controller", |mut c: C<'_>, src: u32, size: u32| -> R<u32> {
        charge(&mut c, "is_controller", size.into())?;
        let bytes = read_mem(&mut c, "is_controller", src.into(), size.into())?;
        match Principal::try_from_slice(&bytes) {
            Ok(p) => Ok(c.data().canister.controllers.contains(&p) as u32),
            Err(_) => trap(&mut c, "ic0.is_controller: argument is not a valid principal"),
        }
    });
    def!("in_replicated_execution", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "in_replicated_execution", 0)?;
        Ok(!matches!(c.data().msg.kind, K::Query | K::InspectMessage) as u32)
    });
    def!("certified_data_set", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "certified_data_set", size.into())?;
        require(&mut c, "certified_data_set", STATE_KINDS)?;
        if size > 32 {
            return trap(&mut c, "ic0.certified_data_set: certified data cannot exceed 32 bytes");
        }
        let bytes = read_mem(&mut c, "certified_data_set", src.into(), size.into())?;
        c.data_mut().canister.certified_data = bytes;
        Ok(())
    });
    def!("data_certificate_present", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "data_certificate_present", 0)?;
        Ok(u32::from(c.data().msg.data_certificate.is_some()))
    });
    def!("data_certificate_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "data_certificate_size", 0)?;
        match &c.data().msg.data_certificate {
            Some(cert) => Ok(cert.len() as u32),
            None => trap(&mut c, "ic0.data_certificate_size: no certificate available"),
        }
    });
    def!("data_certificate_copy", |mut c: C<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        charge(&mut c, "data_certificate_copy", size.into())?;
        let Some(cert) = c.data().msg.data_certificate.clone() else {
            return trap(&mut c, "ic0.data_certificate_copy: no certificate available");
        };
        copy_out(&mut c, "data_certificate_copy", &cert, dst, offset, size)
    });

    // --- debugging ---
    def!("debug_print", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "debug_print", size.into())?;
        let bytes = read_mem(&mut c, "debug_print", src.into(), size.into())?;
        c.data_mut().log(String::from_utf8_lossy(&bytes).into_owned());
        Ok(())
    });
    def!("trap", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "trap", size.into())?;
        let bytes = read_mem(&mut c, "trap", src.into(), size.into())?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        trap(&mut c, format!("Canister called `ic0.trap` with message: '{text}'"))
    });

    // --- stable memory ---
    def!("stable64_size", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, "stable64_size", 0)?;
        Ok(c.data().canister.stable.pages())
    });
    def!("stable64_grow", |mut c: C<'_>, pages: u64| -> R<u64> {
        charge(&mut c, "stable64_grow", 0)?;
        Ok(c.data_mut().canister.stable.grow(pages))
    });
    def!("stable64_write", |mut c: C<'_>, offset: u64, src: u64, size: u64| -> R<()> {
        charge(&mut c, "stable64_write", size)?;
        stable_write(&mut c, "stable64_write", offset, src, size)
    });
    def!("stable64_read", |mut c: C<'_>, dst: u64, offset: u64, size: u64| -> R<()> {
        charge(&mut c, "stable64_read", size)?;
        stable_read(&mut c, "stable64_read", dst, offset, size)
    });
    // Legacy 32-bit stable memory API.
    def!("stable_size", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "stable_size", 0)?;
        match u32::try_from(c.data().canister.stable.pages()) {
            Ok(p) if p <= 65536 => Ok(p),
            _ => trap(&mut c, "ic0.stable_size: stable memory larger than 4 GiB, use stable64_size"),
        }
    });
    def!("stable_grow", |mut c: C<'_>, pages: u32| -> R<i32> {
        charge(&mut c, "stable_grow", 0)?;
        let stable = &mut c.data_mut().canister.stable;
        if stable.pages() + u64::from(pages) > 65536 {
            return Ok(-1);
        }
        let old = stable.grow(pages.into());
        Ok(if old == u64::MAX { -1 } else { old as i32 })
    });
    def!("stable_write", |mut c: C<'_>, offset: u32, src: u32, size: u32| -> R<()> {
        charge(&mut c, "stable_write", size.into())?;
        stable_write(&mut c, "stable_write", offset.into(), src.into(), size.into())
    });
    def!("stable_read", |mut c: C<'_>, dst: u32, offset: u32, size: u32| -> R<()> {
        charge(&mut c, "stable_read", size.into())?;
        stable_read(&mut c, "stable_read", dst.into(), offset.into(), size.into())
    });

    // --- inter-canister calls ---
    def!(
        "call_new",
        |mut c: C<'_>,
         callee_src: u32,
         callee_size: u32,
         name_src: u32,
         name_size: u32,
         reply_fun: u32,
         reply_env: u32,
         reject_fun: u32,
         reject_env: u32|
         -> R<()> {
            charge(&mut c, "call_new", u64::from(callee_size) + u64::from(name_size))?;
            require(&mut c, "call_new", CALL_KINDS)?;
            let callee = read_mem(&mut c, "call_new", callee_src.into(), callee_size.into())?;
            let name = read_mem(&mut c, "call_new", name_src.into(), name_size.into())?;
            let Ok(method) = String::from_utf8(name) else {
                return trap(&mut c, "ic0.call_new: method name is not valid UTF-8");
            };
            // A previously started but not performed call is discarded (its cycles return).
            let d = c.data_mut();
            let new = OutgoingCall {
                callee,
                method,
                arg: Vec::new(),
                callbacks: Callbacks { reply: (reply_fun, reply_env), reject: (reject_fun, reject_env), cleanup: None },
                cycles: 0,
            };
            if let Some(old) = d.msg.pending_call.replace(new) {
                d.canister.cycle_balance += old.cycles;
            }
            Ok(())
        }
    );
    def!("call_on_cleanup", |mut c: C<'_>, fun: u32, env: u32| -> R<()> {
        charge(&mut c, "call_on_cleanup", 0)?;
        require(&mut c, "call_on_cleanup", CALL_KINDS)?;
        match c.data_mut().msg.pending_call.as_mut() {
            Some(call) if call.callbacks.cleanup.is_none() => {
                call.callbacks.cleanup = Some((fun, env));
                Ok(())
            }
            Some(_) => trap(&mut c, "ic0.call_on_cleanup: cleanup callback already set"),
            None => trap(&mut c, "ic0.call_on_cleanup: no call in progress (call ic0.call_new first)"),
        }
    });
    def!("call_data_append", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        charge(&mut c, "call_data_append", size.into())?;
        require(&mut c, "call_data_append", CALL_KINDS)?;
        if c.data().msg.pending_call.is_none() {
            return trap(&mut c, "ic0.call_data_append: no call in progress (call ic0.call_new first)");
        }
        let bytes = read_mem(&mut c, "call_data_append", src.into(), size.into())?;
        if let Some(call) = c.data_mut().msg.pending_call.as_mut() {
            call.arg.extend_from_slice(&bytes);
        }
        Ok(())
    });
    def!("call_with_best_effort_response", |mut c: C<'_>, _timeout: u32| -> R<()> {
        charge(&mut c, "call_with_best_effort_response", 0)?;
        require(&mut c, "call_with_best_effort_response", CALL_KINDS)?;
        if c.data().msg.pending_call.is_none() {
            return trap(&mut c, "ic0.call_with_best_effort_response: no call in progress");
        }
        Ok(())
    });
    def!("call_cycles_add128", |mut c: C<'_>, hi: u64, lo: u64| -> R<()> {
        charge(&mut c, "call_cycles_add128", 0)?;
        require(&mut c, "call_cycles_add128", CALL_KINDS)?;
        if c.data().msg.pending_call.is_none() {
            return trap(&mut c, "ic0.call_cycles_add128: no call in progress");
        }
        let amount = (u128::from(hi) << 64) | u128::from(lo);
        let d = c.data_mut();
        if d.canister.cycle_balance < amount {
            let have = d.canister.cycle_balance;
            return trap(&mut c, format!("ic0.call_cycles_add128: {amount} cycles requested, the balance is {have}"));
        }
        d.canister.cycle_balance -= amount;
        if let Some(call) = d.msg.pending_call.as_mut() {
            call.cycles += amount;
        }
        Ok(())
    });
    def!("call_perform", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, "call_perform", 0)?;
        require(&mut c, "call_perform", CALL_KINDS)?;
        let Some(call) = c.data_mut().msg.pending_call.take() else {
            return trap(&mut c, "ic0.call_perform: no call in progress (call ic0.call_new first)");
        };
        if call.arg.len() > MAX_PAYLOAD {
            // SYS_TRANSIENT-like local failure: the call is not made, its cycles return.
            c.data_mut().canister.cycle_balance += call.cycles;
            return Ok(2);
        }
        c.data_mut().msg.performed_calls.push(call);
        Ok(0)
    });

    // --- everything else the module imports: link, but trap when called ---
    for import in module.imports() {
        let (m, n) = (import.module(), import.name());
        if m == "ic0" && defined.contains(n) {
            continue;
        }
        if let wasmtime::ExternType::Func(ty) = import.ty() {
            let text = if m == "ic0" {
                format!("ic0.{n} not supported by ic-host")
            } else {
                format!("import {m}.{n} not supported by ic-host")
            };
            l.func_new(m, n, ty, move |mut c: C<'_>, _params, _results| trap(&mut c, text.clone()))?;
        }
    }
    Ok(l)
}
