//! Integration tests: a real MCP client (rmcp) against the real `mcp-kernel` binary over stdio.
//!
//! Run `cargo build --bins` first: the binary belongs to another package, so cargo does not
//! build it for this one. One test binary, one module per area (wasmtime's `tests/all`).

mod args;
mod audit;
mod builtins;
mod cache;
mod concurrency;
mod cross_session;
mod deadlines;
mod deploy;
mod effects;
mod execute;
mod first_tries;
mod hibernation;
mod host;
mod http;
mod http_clients;
mod json;
mod layering;
mod limits;
mod lockdown;
mod microtasks;
mod ops;
mod repl_rule;
mod sandbox;
mod seal;
mod sessions;
mod skills;
mod startup_config;
mod state;
mod state_cost;
mod timeouts;
mod unicode;
mod upstream_catalog;
mod upstream_cli;
mod upstream_failures;
mod upstream_http;
mod upstream_job;
mod upstream_results;
mod upstream_secrets;
mod workers;
