//! Signed result URLs, like an object store's presigned links.
//!
//! The signature is a keyed hash of the task id, the image number and the expiry: SipHash keyed
//! with a random per-server key (std's [`RandomState`]), computed twice with different domain tags
//! for 128 bits. That is no production-grade MAC, but nobody without the key can forge a link or
//! move its expiry, which is all an emulator needs.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Signs and checks result links with a per-server random key.
#[derive(Debug, Clone)]
pub(crate) struct Signer {
    key: RandomState,
}

impl Signer {
    /// A signer with a fresh random key.
    pub(crate) fn new() -> Self {
        Signer {
            key: RandomState::new(),
        }
    }

    /// The signature of image `n` of `task_id` expiring at `expires` (unix seconds), in hex.
    pub(crate) fn sign(&self, task_id: &str, n: u8, expires: u64) -> String {
        let high = self.key.hash_one((0u8, task_id, n, expires));
        let low = self.key.hash_one((1u8, task_id, n, expires));
        format!("{high:016x}{low:016x}")
    }

    /// Whether `sig` is the signature of these values (compared in constant time).
    pub(crate) fn verify(&self, task_id: &str, n: u8, expires: u64, sig: &str) -> bool {
        let expected = self.sign(task_id, n, expires);
        expected.len() == sig.len()
            && expected
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_value() {
        let signer = Signer::new();
        let sig = signer.sign("abc", 1, 1000);
        assert_eq!(sig.len(), 32);
        assert!(signer.verify("abc", 1, 1000, &sig));
        assert!(!signer.verify("abc", 2, 1000, &sig));
        assert!(!signer.verify("abc", 1, 1001, &sig));
        assert!(!signer.verify("abd", 1, 1000, &sig));
        assert!(!signer.verify("abc", 1, 1000, "00"));
        assert!(!Signer::new().verify("abc", 1, 1000, &sig));
    }
}
