//! Deterministic file contents, generated chunk by chunk (a 1 GB file is never held
//! in memory at once).

pub const MIB: f64 = 1024.0 * 1024.0;

/// A file of `size` bytes cut in `chunk_size` pieces; its bytes depend only on `seed`.
#[derive(Clone, Copy, Debug)]
pub struct File {
    pub size: u64,
    pub chunk_size: u32,
    pub seed: u64,
}

impl File {
    pub fn new(size: u64, chunk_size: u32, seed: u64) -> Self {
        Self { size, chunk_size, seed }
    }

    pub fn chunk_count(&self) -> u32 {
        self.size.div_ceil(u64::from(self.chunk_size)) as u32
    }

    pub fn chunk_len(&self, idx: u32) -> usize {
        let start = u64::from(idx) * u64::from(self.chunk_size);
        (self.size - start).min(u64::from(self.chunk_size)) as usize
    }

    /// The bytes of chunk `idx` (splitmix64 stream seeded by file and index).
    pub fn chunk(&self, idx: u32) -> Vec<u8> {
        let len = self.chunk_len(idx);
        let mut out = vec![0u8; len];
        let mut state = self.seed ^ (u64::from(idx) + 1).wrapping_mul(0xA076_1D64_78BD_642F);
        for word in out.chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            word.copy_from_slice(&z.to_le_bytes()[..word.len()]);
        }
        out
    }

    /// The file's bytes in `[offset, offset + len)`.
    pub fn range(&self, offset: u64, len: usize) -> Vec<u8> {
        let cs = u64::from(self.chunk_size);
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        while out.len() < len {
            let idx = (pos / cs) as u32;
            let chunk = self.chunk(idx);
            let from = (pos % cs) as usize;
            let take = (len - out.len()).min(chunk.len() - from);
            out.extend_from_slice(&chunk[from..from + take]);
            pos += take as u64;
        }
        out
    }
}

pub fn mb(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb >= 1000.0 {
        format!("{:.3} GB", mb / 1000.0)
    } else if mb >= 1.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{:.0} kB", bytes as f64 / 1e3)
    }
}
