//! Calls into the embedded host, with the figures of each message.

use anyhow::{anyhow, Context, Result};
use candid::utils::ArgumentEncoder;
use candid::{CandidType, Principal};
use ic_host::{CallResult, Host};
use serde::de::DeserializeOwned;

/// What one message cost.
#[derive(Clone, Debug, Default)]
pub struct Msg {
    /// Instructions, system API charges included.
    pub instructions: u64,
    /// The part of `instructions` charged for system API calls.
    pub system_api: u64,
    pub stable_written: u64,
    /// Bytes of payload the message carried (chunk bytes), for per-byte figures.
    pub payload: u64,
    /// Bytes of the ingress message the IC charges per byte: method name + argument.
    pub ingress_bytes: u64,
}

impl Msg {
    fn of(r: &CallResult, payload: u64, method: &str, arg: &[u8]) -> Self {
        Msg {
            ingress_bytes: (method.len() + arg.len()) as u64,
            instructions: r.instructions,
            system_api: r.system_api_instructions,
            stable_written: r.stable_bytes_written,
            payload,
        }
    }
}

/// The outcome of a call whose reply decodes as `R`; a reject is an `Err` that still
/// carries the message's figures.
pub struct Called<R> {
    pub reply: std::result::Result<R, String>,
    pub msg: Msg,
}

pub fn call<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    host: &mut Host,
    update: bool,
    caller: Principal,
    method: &str,
    args: A,
    payload: u64,
) -> Result<Called<R>> {
    let arg = candid::encode_args(args).with_context(|| format!("encode {method}"))?;
    let r = if update { host.update(caller, method, &arg) } else { host.query(caller, method, &arg) };
    let msg = Msg::of(&r, payload, method, &arg);
    let reply = match r.reply {
        Ok(bytes) => Ok(candid::decode_one::<R>(&bytes).with_context(|| format!("decode the reply of {method}"))?),
        Err(reject) => Err(reject.to_string()),
    };
    Ok(Called { reply, msg })
}

/// `call` for methods that must succeed.
pub fn ok<A: ArgumentEncoder, R: CandidType + DeserializeOwned>(
    host: &mut Host,
    update: bool,
    caller: Principal,
    method: &str,
    args: A,
    payload: u64,
) -> Result<(R, Msg)> {
    let c = call(host, update, caller, method, args, payload)?;
    match c.reply {
        Ok(r) => Ok((r, c.msg)),
        Err(e) => Err(anyhow!("{method} was rejected: {e}")),
    }
}

/// Summary of a sequence of messages.
pub fn total(msgs: &[Msg]) -> u64 {
    msgs.iter().map(|m| m.instructions).sum()
}

pub fn largest(msgs: &[Msg]) -> u64 {
    msgs.iter().map(|m| m.instructions).max().unwrap_or(0)
}

/// A call whose reply is not decoded (`()` replies).
pub fn call_raw<A: ArgumentEncoder>(
    host: &mut Host,
    caller: Principal,
    method: &str,
    args: A,
    payload: u64,
) -> Result<(std::result::Result<Vec<u8>, String>, Msg)> {
    let arg = candid::encode_args(args).with_context(|| format!("encode {method}"))?;
    let r = host.update(caller, method, &arg);
    let msg = Msg::of(&r, payload, method, &arg);
    Ok((r.reply.map_err(|e| e.to_string()), msg))
}
