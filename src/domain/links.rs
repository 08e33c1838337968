//! Who may see a memory over HTTP: capsule members, anyone when an owner made the
//! memory public, and the holder of an expiring link to one asset.
//!
//! A link is `/m/<memory>/<kind>?token=<expiry>.<mac>`: the MAC is HMAC-SHA256 over the
//! memory, the kind and the expiry (seconds), truncated to 128 bits, under the
//! capsule's link key. The capsule key is HMAC-SHA256(canister link secret, capsule id,
//! key version): the secret comes from `raw_rand` once and no endpoint returns it or a
//! key; rotating the capsule's key (a new version) revokes every link of the capsule.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use ic_stable_structures::Memory as StableMemory;
use serde_bytes::ByteBuf;
use sha2::Sha256;

use super::http_cert::{kind_code, memory_path};
use super::{Ctx, State};
use crate::api::{AssetKind, Error, Link, Result, Role};

type HmacSha256 = Hmac<Sha256>;

/// Shortest and longest link lifetime.
pub const MIN_LINK_TTL_SECS: u64 = 60;
pub const MAX_LINK_TTL_SECS: u64 = 30 * 24 * 3600;
const MAC_BYTES: usize = 16;

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

impl<M: StableMemory + Clone> State<M> {
    /// Stores the link secret (32 bytes from `raw_rand`) if none is set yet.
    pub fn set_link_secret(&mut self, secret: &[u8]) {
        let mut meta = self.st.http.meta();
        if meta.link_secret.is_none() && secret.len() == 32 {
            meta.link_secret = Some(ByteBuf::from(secret.to_vec()));
            self.st.http.set_meta(meta);
        }
    }

    pub fn has_link_secret(&self) -> bool {
        self.st.http.meta().link_secret.is_some()
    }

    fn capsule_link_mac(&self, capsule_id: u64, memory_id: u64, kind: AssetKind, expiry_secs: u64) -> Option<HmacSha256> {
        let secret = self.st.http.meta().link_secret?;
        let version = self.st.http.link_key_versions.get(&capsule_id).unwrap_or(0);
        let key = hmac(&secret, &[b"keepsake link key\0", &capsule_id.to_be_bytes(), &version.to_be_bytes()])
            .finalize()
            .into_bytes();
        Some(hmac(&key, &[b"keepsake link v1\0", &memory_id.to_be_bytes(), &[kind_code(kind)], &expiry_secs.to_be_bytes()]))
    }

    /// Any reader of the memory's capsule mints a link to one of its assets.
    pub fn links_create(&self, ctx: &Ctx, memory_id: u64, kind: AssetKind, ttl_secs: u64) -> Result<Link> {
        // A memory of a capsule the caller is not in answers like one that does not exist.
        let rec = self.visible_memory(ctx, memory_id, Role::Reader)?;
        if !rec.assets.iter().any(|a| a.kind == kind) {
            return Err(Error::NotFound(format!("memory {memory_id} has no {kind:?} asset")));
        }
        if !(MIN_LINK_TTL_SECS..=MAX_LINK_TTL_SECS).contains(&ttl_secs) {
            return Err(Error::InvalidArgument(format!(
                "ttl_secs must be {MIN_LINK_TTL_SECS} to {MAX_LINK_TTL_SECS} (30 days)"
            )));
        }
        let expiry_secs = ctx.now / 1_000_000_000 + ttl_secs;
        let mac = self.capsule_link_mac(rec.capsule_id, memory_id, kind, expiry_secs).ok_or_else(|| {
            Error::InProgress("the canister is still generating its link secret; retry in a few seconds".into())
        })?;
        let mac = mac.finalize().into_bytes();
        let token = format!("{expiry_secs}.{}", URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES]));
        Ok(Link {
            path: format!("{}?token={token}", memory_path(memory_id, kind)),
            token,
            expires_at_ns: expiry_secs.saturating_mul(1_000_000_000),
        })
    }

    /// True if `token` is a live link to exactly this asset under the capsule's
    /// current key (constant-time comparison).
    pub(crate) fn link_token_valid(&self, capsule_id: u64, memory_id: u64, kind: AssetKind, token: &str, now: u64) -> bool {
        let Some((exp, mac)) = token.split_once('.') else { return false };
        let Ok(expiry_secs) = exp.parse::<u64>() else { return false };
        if expiry_secs.saturating_mul(1_000_000_000) <= now {
            return false;
        }
        let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else { return false };
        if mac.len() != MAC_BYTES {
            return false;
        }
        self.capsule_link_mac(capsule_id, memory_id, kind, expiry_secs)
            .is_some_and(|m| m.verify_truncated_left(&mac).is_ok())
    }

    /// Owners revoke every link of a capsule. Returns the new key version.
    pub fn capsules_rotate_link_key(&mut self, ctx: &Ctx, capsule_id: u64) -> Result<u32> {
        self.require_role(ctx, capsule_id, Role::Owner)?;
        let v = self.st.http.link_key_versions.get(&capsule_id).unwrap_or(0) + 1;
        self.st.http.link_key_versions.insert(capsule_id, v);
        Ok(v)
    }

    /// Owners make a memory's URLs work for anyone (and its bytes available at
    /// `/b/<sha256>`), or private again.
    pub fn memories_set_public(&mut self, ctx: &Ctx, memory_id: u64, public: bool) -> Result<()> {
        let rec = self.visible_memory(ctx, memory_id, Role::Owner)?;
        self.sync_public(memory_id, Some(&rec), public);
        Ok(())
    }

    pub fn memory_is_public(&self, memory_id: u64) -> bool {
        self.st.http.public.contains_key(&memory_id)
    }
}
