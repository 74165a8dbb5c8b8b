// Bearer-token preload for `@modelcontextprotocol/conformance` (0.1.16) `server` runs:
//   MCPK_CONFORMANCE_URL=http://127.0.0.1:PORT/mcp MCPK_CONFORMANCE_TOKEN=... \
//   node --import ./glob-shim.mjs --import ./auth-header.mjs .../conformance/dist/index.js server ...
//
// Why: the CLI has no option or environment variable for request headers. Its server
// scenarios send HTTP in exactly two ways:
//   - global `fetch` (the SDK's StreamableHTTPClientTransport, which looks `fetch` up at call
//     time, and the raw SSE requests of server-sse-polling / server-sse-multiple-streams);
//   - `request` from the npm `undici` package (dns-rebinding-protection, which forges the
//     Host/Origin headers).
// This file wraps both so that every request to the origin of MCPK_CONFORMANCE_URL gets
// `Authorization: Bearer $MCPK_CONFORMANCE_TOKEN`, unless the request already sets one.
// Requests to any other origin are untouched. Load it after glob-shim.mjs (it requires
// `undici`, which must not be the first to load `fs`).
import { createRequire } from 'node:module';

const target = process.env.MCPK_CONFORMANCE_URL;
const token = process.env.MCPK_CONFORMANCE_TOKEN;
if (!target || !token) {
  throw new Error('auth-header.mjs: set MCPK_CONFORMANCE_URL and MCPK_CONFORMANCE_TOKEN');
}
const origin = new URL(target).origin;
const bearer = `Bearer ${token}`;

function sameOrigin(url) {
  try {
    return new URL(url instanceof Request ? url.url : String(url)).origin === origin;
  } catch {
    return false;
  }
}

// --- global fetch
const realFetch = globalThis.fetch;
globalThis.fetch = function fetchWithBearer(input, init) {
  if (!sameOrigin(input)) return realFetch(input, init);
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) headers.set('authorization', bearer);
  return realFetch(input, { ...init, headers });
};

// --- undici.request, resolved from the conformance package as its own import is.
// `undici` is CommonJS: the named exports an ES module sees are read from `module.exports`
// when it is first imported, so replacing the property before that import is enough.
const requireFromConformance = createRequire(
  new URL('../npm/node_modules/@modelcontextprotocol/conformance/package.json', import.meta.url),
);
const undici = requireFromConformance('undici');
const realRequest = undici.request;
undici.request = function requestWithBearer(url, opts = {}, ...rest) {
  if (!sameOrigin(url)) return realRequest.call(this, url, opts, ...rest);
  const headers = { ...(opts.headers ?? {}) };
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) {
    headers.Authorization = bearer;
  }
  return realRequest.call(this, url, { ...opts, headers }, ...rest);
};
