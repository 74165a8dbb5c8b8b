#!/usr/bin/env bash
# Run the MCP conformance suite's server scenarios against a streamable-HTTP endpoint.
#
#   tests/conformance/run.sh URL [TOKEN]
#     URL    e.g. http://127.0.0.1:PORT/mcp (dns-rebinding-protection needs a loopback host)
#     TOKEN  optional bearer token; sent as `Authorization: Bearer TOKEN` on every request
#            to URL's origin (the CLI itself cannot send headers: see auth-header.mjs)
#
# Prints one line per scenario (PASS / FAIL / N/A), then a summary line, and exits 1 if a
# scenario not listed in not-applicable.txt has a check with status FAILURE (WARNING and INFO
# checks do not fail a scenario, matching the CLI's own summary). Exit 2 on usage or setup
# errors (missing node_modules, a name in not-applicable.txt that the suite does not have).
#
# Environment:
#   CONFORMANCE_NOT_APPLICABLE  skip list (default: not-applicable.txt beside this script);
#                               lines `scenario-name # reason`, blank lines and `#` lines ignored
#   CONFORMANCE_SUITE           all (default: active + pending), active, or pending
#   CONFORMANCE_OUT             keep results in a new directory CONFORMANCE_OUT/run.XXXXXX
#                               (default: a temporary directory, deleted after a run with no
#                               failure); it holds cli.log (the CLI's own output) and, per
#                               scenario, server-<scenario>-<timestamp>/checks.json
#   CONFORMANCE_TIMEOUT         seconds for the whole CLI run (default 300; a run takes ~1-2 s)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cli="$root/tests/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js"
skip_file=${CONFORMANCE_NOT_APPLICABLE:-$here/not-applicable.txt}
suite=${CONFORMANCE_SUITE:-all}

if [[ $# -lt 1 || $# -gt 2 || -z $1 ]]; then
  echo "usage: $0 URL [TOKEN]" >&2
  exit 2
fi
url=$1
token=${2:-}

command -v node >/dev/null || { echo "run.sh: node not found on PATH" >&2; exit 2; }
command -v timeout >/dev/null || { echo "run.sh: timeout (coreutils) not found" >&2; exit 2; }
[[ -f $cli ]] || {
  echo "run.sh: $cli missing; run: npm ci --prefix tests/npm" >&2
  exit 2
}
[[ -f $skip_file ]] || { echo "run.sh: skip list $skip_file missing" >&2; exit 2; }

# glob-shim.mjs must be the first --import (see the comment in it).
node_args=(--import "$here/glob-shim.mjs")
if [[ -n $token ]]; then
  node_args+=(--import "$here/auth-header.mjs")
  export MCPK_CONFORMANCE_URL=$url MCPK_CONFORMANCE_TOKEN=$token
fi

scenarios=$(node "${node_args[@]}" "$cli" list --server)
export SCENARIOS=$scenarios SKIP_FILE=$skip_file SUITE=$suite
node "$here/report.cjs" check

if [[ -n ${CONFORMANCE_OUT:-} ]]; then
  mkdir -p "$CONFORMANCE_OUT"
  out=$(mktemp -d "$CONFORMANCE_OUT/run.XXXXXX")
  keep=1
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/mcpk-conformance.XXXXXX")
  keep=0
fi
export OUT=$out

set +e
timeout "${CONFORMANCE_TIMEOUT:-300}" \
  node "${node_args[@]}" "$cli" server --url "$url" --suite "$suite" -o "$out" \
  >"$out/cli.log" 2>&1
cli_rc=$?
set -e
# The CLI exits 1 whenever a check fails, including in not-applicable scenarios, so its
# status is only used to report a crash or a timeout; the verdict comes from checks.json.

set +e
CLI_RC=$cli_rc node "$here/report.cjs" report
rc=$?
set -e
if [[ $rc -eq 0 && $keep -eq 0 ]]; then
  rm -rf "$out"
else
  echo "conformance results: $out" >&2
fi
exit $rc
