//! Calibration canister: what verified ingest costs at the very least.
//!
//! Every method takes one chunk as `blob` (decoded into `serde_bytes::ByteBuf`, like the
//! backend's `uploads_put_chunk`) and does nothing else than the named work, so
//! `ingest_* - decode_only` is the hash alone and `ingest_*` is the floor of a verified
//! put. `digest_*` queries check each implementation against SHA-256 test vectors.

use ic_cdk::{query, update};
use serde_bytes::ByteBuf;

fn sha2_0_11(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn sha2_0_10(bytes: &[u8]) -> [u8; 32] {
    use sha2_010::Digest;
    sha2_010::Sha256::digest(bytes).into()
}

fn hmac_sha256(bytes: &[u8]) -> [u8; 32] {
    hmac_sha256::Hash::hash(bytes)
}

fn by_name(name: &str) -> fn(&[u8]) -> [u8; 32] {
    match name {
        "sha2" => sha2_0_11,
        "sha2-0.10" => sha2_0_10,
        "hmac-sha256" => hmac_sha256,
        other => ic_cdk::trap(format!("unknown implementation {other}")),
    }
}

/// Candid decode only: the argument is decoded and its length returned.
#[update]
fn decode_only(bytes: ByteBuf) -> u64 {
    bytes.len() as u64
}

/// Decode + SHA-256 with sha2 0.11 (the backend's crate).
#[update]
fn ingest_sha2(bytes: ByteBuf) -> ByteBuf {
    ByteBuf::from(sha2_0_11(&bytes).to_vec())
}

/// Decode + SHA-256 with sha2 0.10.
#[update]
fn ingest_sha2_0_10(bytes: ByteBuf) -> ByteBuf {
    ByteBuf::from(sha2_0_10(&bytes).to_vec())
}

/// Decode + SHA-256 with hmac-sha256.
#[update]
fn ingest_hmac_sha256(bytes: ByteBuf) -> ByteBuf {
    ByteBuf::from(hmac_sha256(&bytes).to_vec())
}

/// The digest of `bytes` repeated `times` times (long test vectors without long
/// messages), by the implementation `name`, fed in pieces of `piece` bytes.
#[query]
fn digest(name: String, bytes: ByteBuf, times: u32, piece: u32) -> ByteBuf {
    let f = by_name(&name);
    if times == 1 && piece == 0 {
        return ByteBuf::from(f(&bytes).to_vec());
    }
    let piece = piece.max(1) as usize;
    let out: [u8; 32] = match name.as_str() {
        "sha2" => {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for _ in 0..times {
                bytes.chunks(piece).for_each(|p| h.update(p));
            }
            h.finalize().into()
        }
        "sha2-0.10" => {
            use sha2_010::Digest;
            let mut h = sha2_010::Sha256::new();
            for _ in 0..times {
                bytes.chunks(piece).for_each(|p| h.update(p));
            }
            h.finalize().into()
        }
        _ => {
            let mut h = hmac_sha256::Hash::new();
            for _ in 0..times {
                bytes.chunks(piece).for_each(|p| h.update(p));
            }
            h.finalize()
        }
    };
    ByteBuf::from(out.to_vec())
}
