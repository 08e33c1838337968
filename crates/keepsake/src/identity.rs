//! The local identity of embedded mode: an Ed25519 key generated once and kept as a
//! standard PKCS#8 PEM in the state dir (`identity.pem`), so every command (and a later
//! `--identity` against a replica) acts as the same principal.

use std::path::Path;

use anyhow::Context;
use ic_agent::identity::BasicIdentity;

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32 key bytes follow.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes a fresh Ed25519 identity as PEM (mode 0600 on Unix).
pub fn write_new_ed25519_pem(path: &Path) -> anyhow::Result<()> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| anyhow::anyhow!("no randomness for a new identity: {e}"))?;
    let mut der = ED25519_PKCS8_PREFIX.to_vec();
    der.extend_from_slice(&key);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64(&der)
    );
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
    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
