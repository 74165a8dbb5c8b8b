#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it.
#
# Builds the workspace once (debug; dependencies are optimised, see Cargo.toml), then runs
# unit tests and the one integration-test binary, which drives the real `mcp-kernel` binary
# through a real MCP client over stdio.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

# The integration tests start target/debug/mcp-kernel; build it (and everything else) once.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
