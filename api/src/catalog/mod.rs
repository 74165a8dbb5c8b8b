//! The upstream tool catalogue's pure parts: TypeScript-style signatures generated from JSON
//! Schema, and ranked search over tool names and descriptions.

mod search;
mod signature;

pub(crate) use search::SearchIndex;
pub(crate) use signature::{declaration, signature};
