//! The one subnet this network is: its id (the self-authenticating principal of the
//! root key, which is what clients assume when a certificate has no delegation), its
//! BLS key (the host's [`SubnetKey`]), the canister range it serves, and its one node,
//! whose Ed25519 key signs query responses and is kept beside the state.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use candid::Principal;
use ic_host::certify::SubnetKey;

/// File of the node's Ed25519 secret key (32 bytes) in the network's directory.
pub const NODE_KEY_FILE: &str = "node.key";

/// The node that answers queries.
pub struct NodeKey {
    secret: ic_ed25519::PrivateKey,
    der: Vec<u8>,
    id: Principal,
}

impl NodeKey {
    /// The key kept in `dir` (made on first use), or a fresh one (`None`).
    pub fn load_or_create(dir: Option<&Path>) -> Result<NodeKey> {
        let secret = match dir {
            None => ic_ed25519::PrivateKey::generate(),
            Some(dir) => {
                let path = dir.join(NODE_KEY_FILE);
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        let raw: [u8; 32] = bytes
                            .as_slice()
                            .try_into()
                            .map_err(|_| anyhow!("{} does not hold a 32-byte Ed25519 key", path.display()))?;
                        ic_ed25519::PrivateKey::deserialize_raw_32(&raw)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let key = ic_ed25519::PrivateKey::generate();
                        write_new(&path, &key.serialize_raw())?;
                        key
                    }
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
        };
        let der = secret.public_key().serialize_rfc8410_der();
        let id = Principal::self_authenticating(&der);
        Ok(NodeKey { secret, der, id })
    }

    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.secret.sign_message(msg).to_vec()
    }

    /// The public key, DER (44 bytes), as `/subnet/<id>/node/<node>/public_key` holds it.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn id(&self) -> Principal {
        self.id
    }
}

/// Writes a new secret file (readable by its owner only), durably.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The subnet: its keys, id and canister range.
pub struct Subnet {
    pub id: Principal,
    pub signer: SubnetKey,
    /// The root key as clients take it (DER, 133 bytes).
    pub root_key_der: Vec<u8>,
    root_key_raw: [u8; 96],
    pub node: NodeKey,
    /// Inclusive canister id ranges this subnet serves.
    pub ranges: Vec<(Principal, Principal)>,
}

impl Subnet {
    pub fn new(signer: SubnetKey, node: NodeKey) -> Subnet {
        let root_key_der = signer.public_key_der();
        let id = Principal::self_authenticating(&root_key_der);
        let root_key_raw = signer.public_key().serialize();
        Subnet { id, signer, root_key_der, root_key_raw, node, ranges: vec![canister_range()] }
    }

    /// The raw 96-byte BLS key (what canister signatures are checked against).
    pub fn root_key_raw(&self) -> &[u8] {
        &self.root_key_raw
    }

    pub fn in_ranges(&self, p: &Principal) -> bool {
        self.ranges.iter().any(|(lo, hi)| lo <= p && p <= hi)
    }
}

/// The canister ids the host hands out: `canister_id_of(0)` (`rwlgt-iiaaa-aaaaa-aaaaa-cai`,
/// which tools use as the effective id of `provisional_create_canister_with_cycles`) up
/// to the 2^20-th, like a local replica's first subnet.
pub fn canister_range() -> (Principal, Principal) {
    (ic_host::canister_id_of(0), ic_host::canister_id_of(0xF_FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_key_is_kept_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(Some(dir.path())).unwrap();
        let b = NodeKey::load_or_create(Some(dir.path())).unwrap();
        assert_eq!(a.der(), b.der());
        assert_eq!(a.id(), b.id());
        assert_eq!(a.der().len(), 44);
        let pk = ic_ed25519::PublicKey::deserialize_rfc8410_der(a.der()).unwrap();
        let sig = b.sign(b"hello");
        assert!(pk.verify_signature(b"hello", &sig).is_ok());
        assert!(pk.verify_signature(b"hellO", &sig).is_err());
        assert_ne!(NodeKey::load_or_create(None).unwrap().der(), a.der());
    }

    #[test]
    fn subnet_id_is_the_root_keys_principal_and_ranges_hold_host_ids() {
        let s = Subnet::new(SubnetKey::generate(), NodeKey::load_or_create(None).unwrap());
        assert_eq!(s.id, Principal::self_authenticating(&s.root_key_der));
        assert_eq!(s.root_key_raw().len(), 96);
        assert!(s.root_key_der.ends_with(s.root_key_raw()), "the raw key is the DER key without its prefix");
        assert!(s.in_ranges(&ic_host::DEFAULT_CANISTER_ID));
        assert!(s.in_ranges(&Principal::from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai").unwrap()));
        assert!(s.in_ranges(&Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap()));
        assert!(!s.in_ranges(&Principal::management_canister()));
        assert!(!s.in_ranges(&Principal::anonymous()));
        assert!(!s.in_ranges(&ic_host::canister_id_of(0x10_0000)));
    }
}
