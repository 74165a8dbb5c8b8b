#!/usr/bin/env node
// Streamable-HTTP smoke client on the official TypeScript MCP SDK
// (@modelcontextprotocol/sdk, pinned in tests/npm/package.json; install with
// `npm ci --prefix tests/npm`).
//
//   node tests/clients/ts_client.mjs URL TOKEN CODE                   # tool `execute`, {code: CODE}
//   node tests/clients/ts_client.mjs URL TOKEN ARGS_JSON --tool NAME  # tool NAME, arguments ARGS_JSON
//
// TOKEN is sent as `Authorization: Bearer TOKEN` (StreamableHTTPClientTransport's
// requestInit.headers, so on every POST, GET and DELETE); an empty TOKEN sends none. The tool
// can also be chosen with MCPK_CLIENT_TOOL=NAME (then the third argument is ARGS_JSON too).
//
// It connects (initialize + notifications/initialized), lists every tool (following
// nextCursor), calls the tool, ends the session (DELETE; a failure there is only a warning on
// stderr), and prints exactly one JSON line on stdout:
//   {"tools": [names...], "isError": bool, "structuredContent": ..., "text": first text or null}
// A tool result with isError true still exits 0 (the caller checks "isError"). Any other
// failure (connection, HTTP status, JSON-RPC error, timeout: MCPK_CLIENT_TIMEOUT seconds,
// default 60) prints a message on stderr and exits 1; bad usage exits 2.

const sdk = new URL('../npm/node_modules/@modelcontextprotocol/sdk/dist/esm/', import.meta.url);

function usage(msg) {
  process.stderr.write(
    `ts_client.mjs: ${msg}\n` +
      'usage: ts_client.mjs URL TOKEN CODE | URL TOKEN ARGS_JSON --tool NAME\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const pos = [];
  let tool = process.env.MCPK_CLIENT_TOOL || null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--tool') {
      if (i + 1 >= argv.length) usage('--tool needs a NAME');
      tool = argv[++i];
    } else if (a.startsWith('--tool=')) {
      tool = a.slice('--tool='.length);
    } else {
      pos.push(a);
    }
  }
  if (pos.length !== 3) usage(`expected 3 positional arguments, got ${pos.length}`);
  const [url, token, third] = pos;
  if (tool === null) return { url, token, tool: 'execute', args: { code: third } };
  let args;
  try {
    args = JSON.parse(third);
  } catch (e) {
    usage(`with --tool, the third argument must be a JSON object: ${e.message}`);
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    usage('with --tool, the third argument must be a JSON object');
  }
  return { url, token, tool, args };
}

function fail(msg) {
  process.stderr.write(`ts_client.mjs: ${msg}\n`);
  process.exit(1);
}

const { url, token, tool, args } = parseArgs(process.argv.slice(2));
const timeoutS = Number(process.env.MCPK_CLIENT_TIMEOUT ?? 60);
setTimeout(() => fail(`timed out after ${timeoutS} s (${url})`), timeoutS * 1000).unref();

let Client, StreamableHTTPClientTransport;
try {
  ({ Client } = await import(new URL('client/index.js', sdk)));
  ({ StreamableHTTPClientTransport } = await import(new URL('client/streamableHttp.js', sdk)));
} catch (e) {
  fail(`cannot load @modelcontextprotocol/sdk (run: npm ci --prefix tests/npm): ${e.message}`);
}

let transport;
try {
  transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
  });
  const client = new Client({ name: 'mcpk-ts-client', version: '1.0.0' });
  await client.connect(transport);

  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    tools.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);

  const result = await client.callTool({ name: tool, arguments: args });
  const text = (result.content ?? []).find((c) => c.type === 'text')?.text ?? null;
  const out = {
    tools,
    isError: result.isError === true,
    structuredContent: result.structuredContent ?? null,
    text,
  };

  try {
    await transport.terminateSession();
  } catch (e) {
    process.stderr.write(`ts_client.mjs: warning: ending the session failed: ${e.message}\n`);
  }
  await client.close();
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
} catch (e) {
  const code = e?.code !== undefined ? ` (code ${e.code})` : '';
  const cause = e?.cause?.message ? `: ${e.cause.message}` : '';
  fail(`${e?.name ?? 'Error'}: ${e?.message ?? e}${cause}${code} (${url})`);
}
