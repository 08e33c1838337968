//! The local identity of embedded mode: an Ed25519 key generated once and kept as a
//! standard PKCS#8 PEM in the state dir (`identity.pem`), so every command (and a later
//! `--identity` against a replica) acts as the same principal.
//!
//! Keys are made and encoded by `ic-ed25519` (DFINITY's Ed25519 crate, the one ic-agent
//! signs with) and wrapped by the `pem` crate; nothing here writes DER or base64 by hand.
//! The file is PKCS#8 v1 with LF line endings, byte for byte what earlier keepsake
//! versions wrote, and what dfx and icp-cli read; reading goes through ic-agent's
//! `BasicIdentity`, which takes PKCS#8 v1, v2 and ring's old v2 layout (dfx's).

use std::path::Path;

use anyhow::Context;
use ic_agent::identity::BasicIdentity;
use ic_ed25519::{PrivateKey, PrivateKeyFormat};

/// The PEM text of an Ed25519 key (PKCS#8 v1, `PRIVATE KEY`, LF line endings).
pub fn ed25519_pem(key: &PrivateKey) -> String {
    let der = key.serialize_pkcs8(PrivateKeyFormat::Pkcs8v1);
    pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Writes a fresh Ed25519 identity as PEM (mode 0600 on Unix).
pub fn write_new_ed25519_pem(path: &Path) -> anyhow::Result<()> {
    let pem = ed25519_pem(&PrivateKey::generate());
    crate::fsutil::write_atomic(path, pem.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The state dir's identity, created on first use.
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<BasicIdentity> {
    let path = state_dir.join("identity.pem");
    if !path.exists() {
        std::fs::create_dir_all(state_dir)?;
        write_new_ed25519_pem(&path)?;
    }
    BasicIdentity::from_pem_file(&path).with_context(|| format!("loading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_agent::Identity;

    fn key() -> PrivateKey {
        let raw: [u8; 32] = std::array::from_fn(|i| i as u8);
        PrivateKey::deserialize_raw_32(&raw)
    }

    /// What keepsake wrote before it used maintained crates (hand-rolled DER + base64):
    /// files written then must keep loading, and new files have the same layout.
    const OLD_FORMAT_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn new_files_have_the_layout_of_existing_ones() {
        assert_eq!(ed25519_pem(&key()), OLD_FORMAT_PEM);
    }

    /// RFC 8410 §10.3: the example private key and its public key.
    #[test]
    fn rfc8410_example_key_gives_its_public_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
            -----END PRIVATE KEY-----\n";
        let id = BasicIdentity::from_pem(pem.as_bytes()).unwrap();
        let der = id.public_key().unwrap();
        assert_eq!(
            crate::fsutil::hex(&der[der.len() - 32..]),
            "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
        );
    }

    /// The same key as PKCS#8 v1 (keepsake, OpenSSL, icp-cli), v2 and ring's old v2
    /// layout (dfx) loads as the same principal; CRLF line endings too.
    #[test]
    fn every_pkcs8_layout_loads_as_the_same_principal() {
        let k = key();
        let want = BasicIdentity::from_raw_key(&k.serialize_raw())
            .sender()
            .unwrap();
        for format in [
            PrivateKeyFormat::Pkcs8v1,
            PrivateKeyFormat::Pkcs8v2,
            PrivateKeyFormat::Pkcs8v2WithRingBug,
        ] {
            let pem = k.serialize_pkcs8_pem(format); // CRLF, pem's default
            let id = BasicIdentity::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(id.sender().unwrap(), want, "{format:?}");
        }
        let id = BasicIdentity::from_pem(OLD_FORMAT_PEM.as_bytes()).unwrap();
        assert_eq!(id.sender().unwrap(), want);
    }

    #[test]
    fn a_new_identity_is_written_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap().sender().unwrap();
        let b = load_or_create(dir.path()).unwrap().sender().unwrap();
        assert_eq!(a, b);
        let text = std::fs::read_to_string(dir.path().join("identity.pem")).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n") && !text.contains('\r'));
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap().sender().unwrap(), a);
    }
}
