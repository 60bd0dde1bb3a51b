//! Redis key names that do not reveal client keys: a keyed hash (SipHash-2-4 with a
//! 128-bit key, 128-bit output) of the client key, under a secret shared by the replicas.

use std::fmt::{self, Write as _};
use std::hash::Hasher as _;

use siphasher::sip128::{Hasher128, SipHasher24};

/// The key the secret is derived with (domain separation only; not secret).
const DERIVE: [u8; 16] = *b"tower-ratelimit\x01";
/// The secret used when none is set: public, so it hides nothing from someone who can
/// guess the key (see `RedisStoreBuilder::key_secret`).
pub(super) const DEFAULT_SECRET: &[u8] = b"tower-ratelimit default key-name secret (public)";
/// Shortest secret accepted: 128 bits.
pub(super) const MIN_SECRET_LEN: usize = 16;

/// How client keys become Redis key names.
#[derive(Clone)]
pub(super) enum KeyNames {
    /// A keyed hash of the key (the default).
    Hashed { k0: u64, k1: u64 },
    /// The key itself (debugging only).
    Raw,
}

impl fmt::Debug for KeyNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        match self {
            Self::Hashed { .. } => f.write_str("Hashed"),
            Self::Raw => f.write_str("Raw"),
        }
    }
}

impl KeyNames {
    /// Hashed names under `secret` (any length; hashed down to the 128-bit SipHash key).
    pub(super) fn hashed(secret: &[u8]) -> Self {
        let mut h = SipHasher24::new_with_key(&DERIVE);
        h.write(secret);
        let (k0, k1) = h.finish128().as_u64();
        Self::Hashed { k0, k1 }
    }

    /// Appends the name of `key` to `out`: 32 lowercase hex digits, or the raw key.
    pub(super) fn write(&self, out: &mut String, key: &(impl fmt::Display + ?Sized)) {
        match *self {
            Self::Raw => {
                let _ = write!(out, "{key}");
            }
            Self::Hashed { k0, k1 } => {
                let mut h = HashWriter(SipHasher24::new_with_keys(k0, k1));
                // The key's text is streamed into the hash: no copy of it is kept.
                let _ = write!(h, "{key}");
                let _ = write!(out, "{:032x}", h.0.finish128().as_u128());
            }
        }
    }
}

struct HashWriter(SipHasher24);

impl fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(k: &KeyNames, key: &str) -> String {
        let mut s = String::new();
        k.write(&mut s, key);
        s
    }

    #[test]
    fn names_depend_on_key_and_secret_only() {
        let a = KeyNames::hashed(b"0123456789abcdef-one");
        let b = KeyNames::hashed(b"0123456789abcdef-two");
        let n = name(&a, "203.0.113.7");
        assert_eq!(n.len(), 32);
        assert!(
            n.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(
            n,
            name(&KeyNames::hashed(b"0123456789abcdef-one"), "203.0.113.7")
        );
        assert_ne!(n, name(&b, "203.0.113.7"), "another secret, another name");
        assert_ne!(n, name(&a, "203.0.113.8"));
        assert_eq!(name(&KeyNames::Raw, "alice"), "alice");
    }

    #[test]
    fn streaming_matches_one_shot() {
        // Display implementations write in pieces; the name must not depend on them.
        struct Pieces;
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("20")?;
                f.write_str("3.0.11")?;
                f.write_str("3.7")
            }
        }
        let k = KeyNames::hashed(DEFAULT_SECRET);
        let mut s = String::new();
        k.write(&mut s, &Pieces);
        assert_eq!(s, name(&k, "203.0.113.7"));
    }
}
