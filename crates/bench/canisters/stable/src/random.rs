//! The benchmarks' random keys and values: the same generator (tiny-rng, seed 0) and the
//! same draws as stable-structures' `benchmarks/src/random.rs`, so the trees have the
//! same shape.

use candid::Principal;
use ic_stable_structures::storable::{Blob, Bound, Storable};
use std::borrow::Cow;
use tiny_rng::{Rand, Rng};

pub trait Random {
    fn random(rng: &mut Rng) -> Self;
}

fn bytes(rng: &mut Rng, n: u32) -> Vec<u8> {
    (0..n).map(|_| rng.rand_u8()).collect()
}

impl<const K: usize> Random for Blob<K> {
    fn random(rng: &mut Rng) -> Self {
        let n = rng.rand_u32() % K as u32;
        Blob::try_from(bytes(rng, n).as_slice()).expect("shorter than the bound")
    }
}

impl Random for u64 {
    fn random(rng: &mut Rng) -> Self {
        rng.rand_u64()
    }
}

impl Random for Principal {
    fn random(rng: &mut Rng) -> Self {
        let n = 1 + rng.rand_u32() % (Principal::MAX_LENGTH_IN_BYTES as u32 - 1);
        Principal::from_slice(&bytes(rng, n))
    }
}

impl Random for () {
    fn random(_: &mut Rng) -> Self {}
}

/// `N` bytes (a random prefix, zero-padded), stored unbounded.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unbounded<const N: usize>(Vec<u8>);

/// `N` bytes, stored with a bound of `N` (not fixed-size).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bounded<const N: usize>(Vec<u8>);

fn padded<const N: usize>(prefix: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(N);
    v.extend_from_slice(&prefix[..prefix.len().min(N)]);
    v.resize(N, 0);
    v
}

impl<const N: usize> Bounded<N> {
    pub fn from(prefix: &[u8]) -> Self {
        Self(padded::<N>(prefix))
    }
}

impl<const N: usize> Random for Unbounded<N> {
    fn random(rng: &mut Rng) -> Self {
        let n = rng.rand_u32() % N as u32;
        Self(padded::<N>(&bytes(rng, n)))
    }
}

macro_rules! storable {
    ($t:ident, $bound:expr) => {
        impl<const N: usize> Storable for $t<N> {
            fn to_bytes(&self) -> Cow<'_, [u8]> {
                // An owned copy, as the original benchmark types return.
                Cow::Owned(self.0.clone())
            }
            fn into_bytes(self) -> Vec<u8> {
                self.0
            }
            fn from_bytes(bytes: Cow<[u8]>) -> Self {
                Self(bytes.into_owned())
            }
            const BOUND: Bound = $bound;
        }
    };
}
storable!(Unbounded, Bound::Unbounded);
storable!(Bounded, Bound::Bounded { max_size: N as u32, is_fixed_size: false });
