//! The upstream tool catalogue's pure parts: TypeScript-style signatures generated from JSON
//! Schema, and ranked search over tool names and descriptions.

mod search;
mod signature;

#[allow(unused_imports)]
pub(crate) use search::{SearchHit, SearchIndex};
#[allow(unused_imports)]
pub(crate) use signature::{declaration, signature};
