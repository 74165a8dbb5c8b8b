//! TypeScript-style signatures from JSON Schema (being written).

use rmcp::model::Tool;

#[allow(dead_code)]
pub(crate) fn signature(_server: &str, _tool: &Tool) -> String {
    String::new()
}

#[allow(dead_code)]
pub(crate) fn declaration(_server: &str, _tool: &Tool) -> String {
    String::new()
}
