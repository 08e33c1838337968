//! The calibration canister: the floor of verified ingest (Candid decode + SHA-256 of
//! one chunk), per build variant and SHA-256 implementation, each checked against
//! SHA-256 test vectors first.

use anyhow::{bail, Result};
use ic_host::Host;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::data::File;
use crate::keepsake::USER;
use crate::meter::{ok, Msg};

/// (name in the canister's `digest` query, ingest method)
pub const IMPLEMENTATIONS: [(&str, &str); 3] =
    [("sha2", "ingest_sha2"), ("sha2-0.10", "ingest_sha2_0_10"), ("hmac-sha256", "ingest_hmac_sha256")];

/// One implementation in one build variant.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub variant: String,
    pub implementation: String,
    pub wasm_bytes: usize,
    /// `decode_only` of one chunk.
    pub decode: Msg,
    /// `ingest_*` of the same chunk: decode + SHA-256.
    pub ingest: Msg,
    /// Test vectors and cross-checks passed.
    pub vectors: usize,
}

impl Calibration {
    pub fn len(&self) -> u64 {
        self.ingest.payload
    }
    /// Instructions per byte of the hash alone (ingest - decode).
    pub fn hash_per_byte(&self) -> f64 {
        (self.ingest.instructions - self.decode.instructions) as f64 / self.len() as f64
    }
    pub fn floor_per_mib(&self) -> f64 {
        self.ingest.instructions as f64 * crate::data::MIB / self.len() as f64
    }
    pub fn decode_per_mib(&self) -> f64 {
        self.decode.instructions as f64 * crate::data::MIB / self.len() as f64
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// NIST / FIPS 180-2 vectors: (message, repeat, expected digest).
const VECTORS: &[(&[u8], u32, &str)] = &[
    (b"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    (b"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (
        b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
        1,
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    ),
    (b"aaaaaaaaaa", 100_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
];

fn digest(host: &mut Host, name: &str, bytes: &[u8], times: u32, piece: u32) -> Result<Vec<u8>> {
    let (d, _): (ByteBuf, _) =
        ok(host, false, USER, "digest", (name.to_string(), ByteBuf::from(bytes.to_vec()), times, piece), 0)?;
    Ok(d.into_vec())
}

/// Checks `name` in the canister against the vectors, and against native sha2 on
/// pseudo-random messages of every length around the block boundaries, one-shot and
/// fed in odd pieces.
fn check_vectors(host: &mut Host, name: &str) -> Result<usize> {
    let mut n = 0;
    for (msg, times, want) in VECTORS {
        for piece in [0, 7] {
            let (t, p) = if *times == 1 { (1, piece) } else { (*times, piece.max(1)) };
            let got = hex(&digest(host, name, msg, t, p)?);
            if got != *want {
                bail!("{name}: SHA-256 test vector ({} bytes x {times}) gave {got}, want {want}", msg.len());
            }
            n += 1;
        }
    }
    let sample = File::new(300_000, 300_000, 42).chunk(0);
    let lengths = (0..=130).chain([191, 192, 255, 256, 257, 1000, 4095, 4096, 65_537, 300_000]);
    for len in lengths {
        let m = &sample[..len];
        let want: [u8; 32] = Sha256::digest(m).into();
        for piece in [0, 13] {
            if digest(host, name, m, 1, piece)? != want {
                bail!("{name}: wrong digest of {len} random bytes (piece {piece})");
            }
            n += 1;
        }
    }
    Ok(n)
}

pub fn calibrate(variant: &str, wasm: &[u8], chunk: &[u8]) -> Result<Vec<Calibration>> {
    let mut host = Host::new(wasm, &candid::encode_args(())?)?;
    let len = chunk.len() as u64;
    let arg = || (ByteBuf::from(chunk.to_vec()),);
    let mut out = Vec::new();
    for (name, method) in IMPLEMENTATIONS {
        let vectors = check_vectors(&mut host, name)?;
        let (_, decode): (u64, _) = ok(&mut host, true, USER, "decode_only", arg(), len)?;
        let (d, ingest): (ByteBuf, _) = ok(&mut host, true, USER, method, arg(), len)?;
        if d.as_slice() != Sha256::digest(chunk).as_slice() {
            bail!("{variant}/{name}: wrong digest of the chunk");
        }
        out.push(Calibration {
            variant: variant.into(),
            implementation: name.into(),
            wasm_bytes: wasm.len(),
            decode,
            ingest,
            vectors,
        });
    }
    Ok(out)
}
