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

# The HTTP tests run the official Python MCP SDK as a client: a venv at target/mcpk-py with
# the pins of tests/clients/requirements.txt (built once; later runs only check its stamp).
# shellcheck source=tests/clients/install-python-sdk.sh
. tests/clients/install-python-sdk.sh || exit 1
export MCPK_PY

# The session store's tests need a real Redis (they fail, never skip, without one): use one
# that answers at $REDIS_URL or 127.0.0.1:6379, else start redis-server on a free port for this
# run (installing it with apt-get when missing and root), and export REDIS_URL for the tests.
redis_pong() { # host port: whether a Redis answers PING there (an auth-protected one counts)
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && IFS= read -r reply <&3 &&
    [[ $reply == +PONG* || $reply == -NOAUTH* ]]' _ "$1" "$2" 2>/dev/null
}
redis_url_answers() { # url
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  local host=${rest%:*} port=6379
  [[ $rest == *:* ]] && port=${rest##*:}
  redis_pong "${host:-127.0.0.1}" "$port"
}
# The cache's outage test starts and kills a redis-server of its own, so the binary is needed
# even when a Redis already answers.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server is missing: installing it with apt-get" >&2
  apt-get update && apt-get install -y redis-server
fi
if [ -n "${REDIS_URL:-}" ] && redis_url_answers "$REDIS_URL"; then
  echo "using the Redis at REDIS_URL" >&2
elif redis_pong 127.0.0.1 6379; then
  export REDIS_URL=redis://127.0.0.1:6379
  echo "using the Redis at $REDIS_URL" >&2
else
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "the session store tests need Redis: none answers at ${REDIS_URL:-127.0.0.1:6379} and" \
      "redis-server is not installed; install it (e.g. apt-get install redis-server) or set" \
      "REDIS_URL, then rerun" >&2
    exit 1
  fi
  redis_port=6390
  while (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; do
    redis_port=$((redis_port + 1))
  done
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    >"${TMPDIR:-/tmp}/mcpk-test-redis-$redis_port.log" 2>&1 &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    redis_pong 127.0.0.1 "$redis_port" && break
    kill -0 "$redis_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! redis_pong 127.0.0.1 "$redis_port"; then
    echo "redis-server did not start on port $redis_port:" >&2
    cat "${TMPDIR:-/tmp}/mcpk-test-redis-$redis_port.log" >&2
    exit 1
  fi
  export REDIS_URL="redis://127.0.0.1:$redis_port"
  echo "started redis-server for the tests at $REDIS_URL" >&2
fi

# The integration tests start target/debug/mcp-kernel; build it (and everything else) once.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked "$@"
