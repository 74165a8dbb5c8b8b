//! [`CacheError`]: the only failures the cache reports (configuration). Redis failures at run
//! time are never errors of a call: they are logged, counted and retried with backoff.

/// What a constructor of [`crate::TieredCache`] refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A [`crate::CacheConfig`] field is out of range.
    #[error("cache config: {field}: {reason}")]
    Config {
        /// The field's name, as in `CacheConfig`.
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The Redis URL does not parse.
    #[error("cache redis url: {0}")]
    RedisUrl(String),
}
