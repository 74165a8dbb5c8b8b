#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it.
#
# Installs the pinned npm MCP servers (tests/npm) the integration tests use as upstreams, builds
# the workspace once (debug; dependencies are optimised, see Cargo.toml), then runs unit tests
# and the one integration-test binary, which drives the real `mcp-kernel` binary through a real
# MCP client over stdio.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

# Some integration tests run the pinned npm MCP servers in tests/npm as upstreams: they need
# Node.js >= 18 and npm (see tests/npm/README.md).
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_ready() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [ "$(node_major)" -ge 18 ]; }
if ! node_ready && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Node.js >= 18 with npm is missing: installing nodejs and npm with apt-get" >&2
  apt-get update && apt-get install -y nodejs npm
fi
if ! node_ready; then
  echo "Node.js >= 18 and npm are needed (found node $(node --version 2>/dev/null || echo none)," \
    "npm $(npm --version 2>/dev/null || echo none)): install them, e.g. from" \
    "https://nodejs.org or with your package manager, then rerun" >&2
  exit 1
fi
if [ "$(node_major)" -lt 20 ]; then
  echo "warning: Node.js $(node --version) is older than 20, which some locked packages in" \
    "tests/npm declare (@hono/node-server, brace-expansion); use Node.js 20+ if tests fail" >&2
fi
# `npm ci` wipes and reinstalls node_modules; skip it while the lockfile is unchanged since the
# last successful install (a copy of it is kept in node_modules as the stamp).
npm_stamp=tests/npm/node_modules/.mcpk-package-lock.json
if ! cmp -s tests/npm/package-lock.json "$npm_stamp"; then
  npm ci --prefix tests/npm --no-audit --no-fund
  cp tests/npm/package-lock.json "$npm_stamp"
fi

# The integration tests start target/debug/mcp-kernel; build it (and everything else) once.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
