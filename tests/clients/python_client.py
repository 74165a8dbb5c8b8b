#!/usr/bin/env python3
"""Streamable-HTTP smoke client on the official Python MCP SDK (`mcp`, pinned in
install-python-sdk.sh; run it with target/mcpk-py/bin/python).

    python_client.py URL TOKEN CODE                 # calls tool `execute` with {"code": CODE}
    python_client.py URL TOKEN ARGS_JSON --tool NAME  # calls tool NAME with the JSON object ARGS_JSON

TOKEN is sent as `Authorization: Bearer TOKEN`; an empty TOKEN sends no Authorization header.
The tool can also be chosen with MCPK_CLIENT_TOOL=NAME (then the third argument is ARGS_JSON too).

It connects, negotiates the protocol (SDK default: mode "auto", i.e. a `server/discover` probe
that falls back to the `initialize` handshake on a server without it; MCPK_CLIENT_MODE=legacy
sends `initialize` only), lists every tool (following nextCursor), calls the tool, and prints
exactly one compact JSON line on stdout (same text as ts_client.mjs prints):

    {"tools": [names...], "isError": bool, "structuredContent": ..., "text": first text or null}

A tool result with isError true still exits 0 (the caller checks "isError"). Any other failure
(connection, HTTP status, JSON-RPC error, timeout: MCPK_CLIENT_TIMEOUT seconds, default 60)
prints a message on stderr and exits 1; bad usage exits 2.
"""

from __future__ import annotations

import json
import os
import sys


def usage(msg: str) -> None:
    print(f"python_client.py: {msg}", file=sys.stderr)
    print("usage: python_client.py URL TOKEN CODE | URL TOKEN ARGS_JSON --tool NAME", file=sys.stderr)
    sys.exit(2)


def parse_args(argv: list[str]) -> tuple[str, str, str, dict]:
    pos: list[str] = []
    tool = os.environ.get("MCPK_CLIENT_TOOL") or None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--tool":
            if i + 1 >= len(argv):
                usage("--tool needs a NAME")
            tool = argv[i + 1]
            i += 2
            continue
        if a.startswith("--tool="):
            tool = a[len("--tool="):]
        else:
            pos.append(a)
        i += 1
    if len(pos) != 3:
        usage(f"expected 3 positional arguments, got {len(pos)}")
    url, token, third = pos
    if tool is None:
        return url, token, "execute", {"code": third}
    try:
        args = json.loads(third)
    except json.JSONDecodeError as e:
        usage(f"with --tool, the third argument must be a JSON object: {e}")
    if not isinstance(args, dict):
        usage("with --tool, the third argument must be a JSON object")
    return url, token, tool, args


# Last non-2xx HTTP response, for the error message: the SDK reports e.g. a 401 only as
# "Server returned an error response".
http_errors: list[str] = []


async def run(url: str, token: str, tool: str, args: dict) -> dict:
    import httpx2

    async def note_status(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            http_errors.append(f"HTTP {response.status_code} for {response.request.method}")

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    mode = os.environ.get("MCPK_CLIENT_MODE", "auto")
    # Same timeouts as the SDK's default client (30 s, 300 s read for SSE streams).
    async with httpx2.AsyncClient(
        headers=headers,
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [note_status]},
    ) as http:
        async with Client(
            streamable_http_client(url, http_client=http),
            mode=mode,
            raise_exceptions=True,
        ) as client:
            names: list[str] = []
            cursor = None
            while True:
                page = await client.list_tools(cursor=cursor)
                names.extend(t.name for t in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            result = await client.call_tool(tool, args)
            text = next((c.text for c in result.content if getattr(c, "type", None) == "text"), None)
            return {
                "tools": names,
                "isError": bool(result.is_error),
                "structuredContent": result.structured_content,
                "text": text,
            }


def describe(exc: BaseException) -> str:
    # anyio task groups wrap failures in ExceptionGroups; name the leaves.
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def main() -> int:
    url, token, tool, args = parse_args(sys.argv[1:])
    try:
        import anyio
    except ImportError as e:
        print(f"python_client.py: the mcp SDK is not importable ({e}); use target/mcpk-py/bin/python", file=sys.stderr)
        return 1
    timeout = float(os.environ.get("MCPK_CLIENT_TIMEOUT", "60"))

    async def bounded() -> dict:
        with anyio.fail_after(timeout):
            return await run(url, token, tool, args)

    try:
        out = anyio.run(bounded)
    except TimeoutError:
        print(f"python_client.py: timed out after {timeout:g} s ({url})", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - one message on stderr for any failure
        last = f"; last {http_errors[-1]}" if http_errors else ""
        print(f"python_client.py: {describe(e)} ({url}{last})", file=sys.stderr)
        return 1
    print(json.dumps(out, separators=(",", ":"), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
