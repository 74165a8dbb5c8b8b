//! Cache keys: SHA-256 over a canonical, unambiguous encoding of tagged fields.

use std::fmt;

use sha2::{Digest, Sha256};

/// Domain separation: the first bytes hashed into every key, so a digest of the same bytes made
/// for another purpose can never collide with a cache key. Bump the suffix when the encoding
/// changes.
const KEY_DOMAIN: &[u8] = b"mcpk-cache-key/v1\0";

/// A cache key: the SHA-256 digest (32 bytes) built by [`KeyBuilder`].
///
/// `Display` and `Debug` show it as 64 lowercase hex digits, the form used in Redis keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// Wraps a digest made elsewhere (for example read back from a stored entry).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits.
    #[must_use]
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.to_hex())
    }
}

/// Builds a [`CacheKey`] from tagged fields, in the order they are added.
///
/// The encoding is canonical and unambiguous: each field is written as
/// `u64 BE len(tag) ‖ tag ‖ u64 BE len(bytes) ‖ bytes`, after a fixed domain prefix, and the
/// whole stream is hashed with SHA-256. Because every length is explicit, no two different
/// field lists produce the same byte stream: moving bytes from the end of one field to the start
/// of the next, or from a value into a tag, changes the encoding. Order matters: add fields in a
/// fixed order (the caller's code decides it, not a map's iteration order).
///
/// ```
/// use mcpk_cache::KeyBuilder;
/// let key = KeyBuilder::new()
///     .field("kernel", b"0.1.0")
///     .field("code", b"return 1")
///     .field_u64("skills_version", 7)
///     .finish();
/// assert_eq!(key.to_hex().len(), 64);
/// ```
#[derive(Clone)]
pub struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// An empty key (only the domain prefix).
    #[must_use]
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(KEY_DOMAIN);
        Self { hasher }
    }

    /// Adds one field: `tag` names it (for example `"code"`), `bytes` is its value.
    #[must_use]
    pub fn field(mut self, tag: &str, bytes: &[u8]) -> Self {
        self.write(tag.as_bytes());
        self.write(bytes);
        self
    }

    /// Adds a string field (its UTF-8 bytes).
    #[must_use]
    pub fn field_str(self, tag: &str, value: &str) -> Self {
        self.field(tag, value.as_bytes())
    }

    /// Adds an integer field (its 8 big-endian bytes).
    #[must_use]
    pub fn field_u64(self, tag: &str, value: u64) -> Self {
        self.field(tag, &value.to_be_bytes())
    }

    /// The SHA-256 of everything added so far.
    #[must_use]
    pub fn finish(self) -> CacheKey {
        CacheKey(self.hasher.finalize().into())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.hasher.update((bytes.len() as u64).to_be_bytes());
        self.hasher.update(bytes);
    }
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBuilder").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_a_boundary_between_two_fields_changes_the_key() {
        // The naive concatenation of these pairs is the same "abcdef" in every case.
        let a = KeyBuilder::new()
            .field("x", b"abc")
            .field("y", b"def")
            .finish();
        let b = KeyBuilder::new()
            .field("x", b"ab")
            .field("y", b"cdef")
            .finish();
        let c = KeyBuilder::new()
            .field("x", b"abcd")
            .field("y", b"ef")
            .finish();
        let d = KeyBuilder::new()
            .field("x", b"")
            .field("y", b"abcdef")
            .finish();
        let keys = [a, b, c, d];
        for (i, k) in keys.iter().enumerate() {
            for l in &keys[i + 1..] {
                assert_ne!(k, l);
            }
        }
    }

    #[test]
    fn bytes_cannot_move_between_tag_and_value() {
        let a = KeyBuilder::new().field("code", b"x").finish();
        let b = KeyBuilder::new().field("cod", b"ex").finish();
        let c = KeyBuilder::new().field("codex", b"").finish();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn a_length_prefix_cannot_be_forged_inside_a_value() {
        // One field whose value contains what an encoded second field would look like.
        let two = KeyBuilder::new().field("a", b"1").field("b", b"2").finish();
        let mut forged = b"1".to_vec();
        forged.extend_from_slice(&1u64.to_be_bytes());
        forged.extend_from_slice(b"b");
        forged.extend_from_slice(&1u64.to_be_bytes());
        forged.extend_from_slice(b"2");
        let one = KeyBuilder::new().field("a", &forged).finish();
        assert_ne!(two, one);
    }

    #[test]
    fn field_order_and_count_matter_and_equal_input_is_stable() {
        let ab = KeyBuilder::new().field("a", b"1").field("b", b"2").finish();
        let ba = KeyBuilder::new().field("b", b"2").field("a", b"1").finish();
        assert_ne!(ab, ba);
        let empty = KeyBuilder::new().finish();
        let one_empty = KeyBuilder::new().field("", b"").finish();
        assert_ne!(empty, one_empty);
        let again = KeyBuilder::new().field("a", b"1").field("b", b"2").finish();
        assert_eq!(ab, again);
    }

    #[test]
    fn the_encoding_is_pinned() {
        // A change to the encoding must be deliberate (and bump KEY_DOMAIN): pin one digest.
        let mut expected = Sha256::new();
        expected.update(KEY_DOMAIN);
        expected.update(4u64.to_be_bytes());
        expected.update(b"code");
        expected.update(8u64.to_be_bytes());
        expected.update(b"return 1");
        let expected: [u8; 32] = expected.finalize().into();
        let key = KeyBuilder::new().field_str("code", "return 1").finish();
        assert_eq!(key.as_bytes(), &expected);
        assert_eq!(key.to_hex().len(), 64);
        assert_eq!(
            KeyBuilder::new().field_u64("n", 7).finish(),
            KeyBuilder::new()
                .field("n", &[0, 0, 0, 0, 0, 0, 0, 7])
                .finish()
        );
    }
}
