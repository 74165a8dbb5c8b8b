# Install the Python MCP SDK for tests/clients/python_client.py into a venv.
#
#   bash tests/clients/install-python-sdk.sh      # executed: exits 0 or 1
#   . tests/clients/install-python-sdk.sh         # sourced (e.g. from scripts/test.sh): returns
#                                                 # 0 or 1 and sets MCPK_PY to the venv's python
#
# The venv is $MCPK_PY_VENV (default <workspace>/target/mcpk-py); the pins are
# tests/clients/requirements.txt (mcp==2.3.0, kubernetes-validate for deploy/, and their
# dependency closure). The venv is (re)built only when it is missing or its stamp file
# (.mcpk-stamp: a hash of requirements.txt and the base interpreter's version) differs;
# otherwise this takes well under a second. A stale venv is deleted and rebuilt from scratch,
# so no package outlives its pin. Needs python3 >= 3.10 with the venv module and access to
# PyPI (first run only, ~10 s).
# Sourcing it changes no shell option and defines only mcpk_install_python_sdk and MCPK_PY.

mcpk_install_python_sdk() {
  local here root req venv py stamp want base base_ver mcp_pin
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || return 1
  root=$(cd "$here/../.." && pwd) || return 1
  req=$here/requirements.txt
  venv=${MCPK_PY_VENV:-$root/target/mcpk-py}
  py=$venv/bin/python
  stamp=$venv/.mcpk-stamp

  base=$(command -v python3) || {
    echo "install-python-sdk: python3 not found on PATH (need Python >= 3.10 with venv)" >&2
    return 1
  }
  # One interpreter start (pyenv shims cost ~0.2 s each): print the version, fail if < 3.10.
  if ! base_ver=$("$base" -c 'import sys; print(sys.version.split()[0]); sys.exit(sys.version_info < (3, 10))'); then
    echo "install-python-sdk: $base is Python ${base_ver:-(did not run)}; mcp needs Python >= 3.10" >&2
    return 1
  fi
  [[ -f $req ]] || { echo "install-python-sdk: $req missing" >&2; return 1; }

  want="$(sha256sum "$req" | cut -d' ' -f1) $base_ver"
  mcp_pin=$(sed -n 's/^mcp==//p' "$req")

  # Fast path: stamp matches and the venv's interpreter still runs and sees the pinned mcp.
  if [[ -f $stamp && $(<"$stamp") == "$want" ]] &&
    "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$mcp_pin')" 2>/dev/null; then
    MCPK_PY=$py
    return 0
  fi

  echo "install-python-sdk: creating $venv (mcp==$mcp_pin)" >&2
  rm -rf "$venv"
  if ! "$base" -m venv "$venv"; then
    echo "install-python-sdk: '$base -m venv' failed; install the venv module (Debian: apt-get install python3-venv)" >&2
    rm -rf "$venv"
    return 1
  fi
  if ! "$py" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"; then
    echo "install-python-sdk: pip could not install $req into $venv (is PyPI reachable?)" >&2
    rm -rf "$venv"
    return 1
  fi
  # Verify: consistent dependencies, the pinned version, and the modules the client imports.
  if ! "$py" -m pip check --disable-pip-version-check >&2 ||
    ! "$py" -c "
import importlib.metadata as m, sys
import anyio, httpx2, mcp, mcp.client.streamable_http, kubernetes_validate, yaml
from mcp import Client
v = m.version('mcp')
sys.exit(0 if v == '$mcp_pin' else f'mcp {v} installed, {\"$mcp_pin\"} pinned')
"; then
    echo "install-python-sdk: the venv at $venv does not work (see above)" >&2
    rm -rf "$venv"
    return 1
  fi
  printf '%s\n' "$want" >"$stamp"
  MCPK_PY=$py
  echo "install-python-sdk: ready: $py (mcp==$mcp_pin)" >&2
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  mcpk_install_python_sdk
  exit $?
else
  mcpk_install_python_sdk
fi
