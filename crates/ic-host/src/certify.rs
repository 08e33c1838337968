//! The host is the subnet: it certifies the canister's state.
//!
//! A [`SubnetKey`] is a BLS12-381 key pair generated once per host (the network's root
//! key; there is no delegation). Inside a non-replicated query, `ic0.data_certificate_*`
//! hand the canister a real certificate: a hash tree with `/canister/<id>/certified_data`
//! and `/time`, signed over `"\x0Dic-state-root" ++ root_hash` as the IC interface
//! specification says. The tree and certificate types are `ic-certification`'s, the
//! signature `ic-verify-bls-signature`'s; clients verify it with the DER public key from
//! [`SubnetKey::public_key_der`] (what `/api/v2/status` will serve as `root_key`).

use candid::Principal;
use ic_certification::{fork, labeled, leaf, Certificate, HashTree};
use ic_verify_bls_signature::{PrivateKey, PublicKey};

/// Domain separator of a state-tree root signature.
const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// DER prefix of an IC BLS12-381 public key (the interface specification's
/// "BLS key" encoding: an `AlgorithmIdentifier` for bls12_381-g2 followed by the
/// 96-byte compressed G2 point). The same constant every IC client checks for.
const BLS_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x01, 0x02,
    0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03, 0x02, 0x01, 0x03, 0x61, 0x00,
];

/// The subnet's signing key.
#[derive(Clone)]
pub struct SubnetKey {
    secret: PrivateKey,
}

impl std::fmt::Debug for SubnetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubnetKey").field("public_key", &hex(&self.public_key().serialize())).finish()
    }
}

impl SubnetKey {
    /// A fresh random key (from the operating system's randomness).
    pub fn generate() -> Self {
        loop {
            let mut seed = [0u8; PrivateKey::BYTES];
            getrandom::fill(&mut seed).expect("the operating system provides randomness");
            if let Some(k) = Self::from_secret(&seed) {
                return k;
            }
        }
    }

    /// Restores a key saved with [`SubnetKey::secret`]; `None` if the bytes are not a
    /// valid BLS12-381 scalar.
    pub fn from_secret(bytes: &[u8]) -> Option<Self> {
        PrivateKey::deserialize(bytes).ok().map(|secret| SubnetKey { secret })
    }

    /// The secret scalar (big-endian), for a host that keeps its key on disk.
    pub fn secret(&self) -> [u8; PrivateKey::BYTES] {
        self.secret.serialize()
    }

    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// The root key as IC clients take it (`ic-agent`'s `set_root_key`, agent-js's
    /// `rootKey`, `ic-response-verification`'s `ic_public_key`).
    pub fn public_key_der(&self) -> Vec<u8> {
        let mut der = BLS_DER_PREFIX.to_vec();
        der.extend_from_slice(&self.public_key().serialize());
        der
    }

    /// Signs a state tree and returns the CBOR certificate (with the self-describing
    /// tag, as the IC sends it).
    pub fn certificate(&self, tree: HashTree) -> Vec<u8> {
        let mut msg = STATE_ROOT_DOMAIN.to_vec();
        msg.extend_from_slice(&tree.digest());
        let signature = self.secret.sign(&msg).serialize().to_vec();
        let cert = Certificate { tree, signature, delegation: None };
        let mut out = Vec::new();
        let mut ser = serde_cbor::Serializer::new(&mut out);
        ser.self_describe().expect("writing to a Vec cannot fail");
        serde::Serialize::serialize(&cert, &mut ser).expect("a certificate always serializes");
        out
    }

    /// The certificate a query of `canister_id` receives: its certified data and the
    /// host's time.
    pub fn data_certificate(&self, canister_id: &Principal, certified_data: &[u8], time_ns: u64) -> Vec<u8> {
        self.certificate(state_tree(canister_id, certified_data, time_ns))
    }
}

/// `/canister/<id>/certified_data` and `/time` (LEB128 nanoseconds), labels in order.
pub fn state_tree(canister_id: &Principal, certified_data: &[u8], time_ns: u64) -> HashTree {
    let mut time = Vec::new();
    leb128::write::unsigned(&mut time, time_ns).expect("writing to a Vec cannot fail");
    fork(
        labeled(
            "canister",
            labeled(canister_id.as_slice().to_vec(), labeled("certified_data", leaf(certified_data.to_vec()))),
        ),
        labeled("time", leaf(time)),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_signature_verifies_under_the_root_key_and_fails_when_tampered() {
        let key = SubnetKey::generate();
        let id = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
        let tree = state_tree(&id, &[7; 32], 1_700_000_000_000_000_000);
        let mut msg = STATE_ROOT_DOMAIN.to_vec();
        msg.extend_from_slice(&tree.digest());
        let cert = key.certificate(tree.clone());
        assert_eq!(&cert[..3], &[0xd9, 0xd9, 0xf7], "self-describing CBOR tag");
        let der = key.public_key_der();
        assert_eq!(der.len(), 133);
        let raw = &der[37..];
        let sig = key.secret.sign(&msg).serialize();
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &msg, raw).is_ok());
        let other = state_tree(&id, &[8; 32], 1_700_000_000_000_000_000);
        let mut bad = STATE_ROOT_DOMAIN.to_vec();
        bad.extend_from_slice(&other.digest());
        assert!(ic_verify_bls_signature::verify_bls_signature(&sig, &bad, raw).is_err());
        let restored = SubnetKey::from_secret(&key.secret()).unwrap();
        assert_eq!(restored.public_key_der(), der);
    }
}
