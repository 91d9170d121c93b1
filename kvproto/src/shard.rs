//! Shard functions. A key is routed to `shard_of(key, n)` in `0..n`.
//!
//! `modulo` reads the key's bytes as one big-endian unsigned integer and takes it mod `n`,
//! so a one-character key lands on `ord(c) % n`, exactly as the book's client does.
//! `jump` is Lamping & Veach's jump consistent hash over a fixed 64-bit FNV-1a of the key:
//! growing from `n` to `m` moves only about `(m - n) / m` of the keys.

use serde::{Deserialize, Serialize};

/// How keys map to shards. Fixed when a store is created.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Sharding {
    /// The book's scheme: the key as a big-endian integer, mod the shard count.
    #[default]
    Modulo,
    /// Jump consistent hashing: far fewer keys move when the shard count changes.
    Jump,
}

impl Sharding {
    /// The shard (in `0..shards`) that owns `key`. `shards` must be at least 1; 0 is treated as 1.
    pub fn shard_of(self, key: &[u8], shards: u32) -> u32 {
        match self {
            Sharding::Modulo => modulo(key, shards),
            Sharding::Jump => jump(key, shards),
        }
    }

    /// The name used in the CRD and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Sharding::Modulo => "modulo",
            Sharding::Jump => "jump",
        }
    }
}

impl std::fmt::Display for Sharding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Sharding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "modulo" => Ok(Sharding::Modulo),
            "jump" => Ok(Sharding::Jump),
            other => Err(format!(
                "unknown sharding {other:?}: expected modulo or jump"
            )),
        }
    }
}

/// The key's bytes as a big-endian unsigned integer, mod `shards`, computed digit by digit
/// (Horner's rule) so that no key length can overflow.
pub fn modulo(key: &[u8], shards: u32) -> u32 {
    let n = u64::from(shards.max(1));
    let rem = key
        .iter()
        .fold(0u64, |acc, &byte| (acc * 256 + u64::from(byte)) % n);
    // rem < n <= u32::MAX, so the conversion cannot fail.
    u32::try_from(rem).unwrap_or(0)
}

/// Jump consistent hash (Lamping & Veach, 2014) of the key's FNV-1a hash.
pub fn jump(key: &[u8], shards: u32) -> u32 {
    let buckets = i64::from(shards.max(1));
    let mut state = fnv1a64(key);
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < buckets {
        bucket = next;
        state = state
            .wrapping_mul(2_862_933_555_777_941_757)
            .wrapping_add(1);
        let divisor = ((state >> 33) + 1) as f64;
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / divisor)) as i64;
    }
    u32::try_from(bucket).unwrap_or(0)
}

/// 64-bit FNV-1a: tiny, stable across versions and platforms, good enough to feed `jump`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_letters_follow_the_book() {
        for n in 1..=7u32 {
            for c in b'a'..=b'z' {
                assert_eq!(
                    modulo(&[c], n),
                    u32::from(c) % n,
                    "letter {} n {n}",
                    c as char
                );
            }
        }
    }

    #[test]
    fn modulo_matches_big_integer_arithmetic_on_short_keys() {
        // "ab" = 0x6162 = 24930
        assert_eq!(modulo(b"ab", 7), 24930 % 7);
        assert_eq!(modulo(b"", 5), 0);
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [Sharding::Modulo, Sharding::Jump] {
            assert_eq!(s.to_string().parse::<Sharding>(), Ok(s));
        }
        assert!("ring".parse::<Sharding>().is_err());
    }

    fn moved_fraction(sharding: Sharding, from: u32, to: u32) -> f64 {
        let keys: Vec<String> = (0..20_000).map(|i| format!("key-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| {
                sharding.shard_of(k.as_bytes(), from) != sharding.shard_of(k.as_bytes(), to)
            })
            .count();
        moved as f64 / keys.len() as f64
    }

    #[test]
    fn jump_moves_about_m_minus_n_over_m_and_modulo_moves_most() {
        let jump_frac = moved_fraction(Sharding::Jump, 3, 5);
        let modulo_frac = moved_fraction(Sharding::Modulo, 3, 5);
        assert!(
            (jump_frac - 2.0 / 5.0).abs() < 0.03,
            "jump moved {jump_frac}"
        );
        assert!(
            (modulo_frac - 4.0 / 5.0).abs() < 0.05,
            "modulo moved {modulo_frac}"
        );
    }

    proptest! {
        #[test]
        fn every_key_lands_in_range(key in proptest::collection::vec(any::<u8>(), 0..300), n in 1u32..1000) {
            prop_assert!(modulo(&key, n) < n);
            prop_assert!(jump(&key, n) < n);
        }

        #[test]
        fn modulo_agrees_with_u128_for_keys_that_fit(key in proptest::collection::vec(any::<u8>(), 0..16), n in 1u32..u32::MAX) {
            let as_int = key.iter().fold(0u128, |acc, &b| acc * 256 + u128::from(b));
            prop_assert_eq!(u128::from(modulo(&key, n)), as_int % u128::from(n));
        }

        #[test]
        fn jump_only_moves_keys_to_new_buckets(key in proptest::collection::vec(any::<u8>(), 1..64), n in 1u32..200, extra in 1u32..50) {
            let before = jump(&key, n);
            let after = jump(&key, n + extra);
            prop_assert!(after == before || after >= n, "moved from {} to old bucket {}", before, after);
        }

        #[test]
        fn shard_functions_are_deterministic(key in proptest::collection::vec(any::<u8>(), 0..64), n in 1u32..64) {
            prop_assert_eq!(Sharding::Modulo.shard_of(&key, n), Sharding::Modulo.shard_of(&key, n));
            prop_assert_eq!(Sharding::Jump.shard_of(&key, n), Sharding::Jump.shard_of(&key, n));
        }
    }
}
