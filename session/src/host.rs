//! The tools of a server with no upstream MCP servers configured.

use mcpk_kernel::{HostFuture, HostOp};

use crate::router::Tools;

/// Answers tool host calls when no upstream MCP server is configured: the catalogue is empty
/// and every tool call fails with a message naming the server and tool asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUpstreams;

impl Tools for NoUpstreams {
    fn call(&self, _tenant: &str, op: HostOp) -> HostFuture {
        let answer = match op {
            HostOp::ListTools { .. } | HostOp::SearchTools { .. } | HostOp::ListResources => {
                Ok(serde_json::Value::Array(Vec::new()))
            }
            HostOp::ReadResource { uri, .. } => Err(format!(
                "no resource `{uri}`: no upstream MCP servers are configured"
            )),
            HostOp::CallTool { server, tool, .. } => Err(format!(
                "unknown server `{server}` (tool `{tool}`): no upstream MCP servers are configured"
            )),
            _ => Err("unsupported host call".to_owned()),
        };
        Box::pin(std::future::ready(answer))
    }

    fn schema_sha256(&self, _server: &str, _tool: &str) -> Option<String> {
        None
    }

    fn read_only(&self, _server: &str, _tool: &str) -> bool {
        false
    }

    fn catalog_version(&self) -> String {
        String::new()
    }

    fn server_names(&self, _tenant: &str) -> Vec<String> {
        Vec::new()
    }
}
