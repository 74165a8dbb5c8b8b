// Node 20 shim for `@modelcontextprotocol/conformance` (0.1.16), loaded with
//   node --import ./tests/conformance/glob-shim.mjs .../conformance/dist/index.js ...
//
// Why: the CLI's bundled dist/index.js starts with
//   import { existsSync, globSync, ... } from "fs";
// and `fs.globSync` only exists in Node >= 22 (the package is built with
// `--target node20` but does not shim it). On Node 20 every subcommand, even
// `--help`, dies at module link time with
//   SyntaxError: The requested module 'fs' does not provide an export named 'globSync'
// The CLI only *calls* globSync in `tier-check` (to find `**/checks.json` under
// a results directory), never in `list`/`server`/`client`.
//
// How: the ESM facade of a builtin (`import ... from "fs"`) takes its list of
// export names from the CommonJS `fs` object when the facade is first created,
// i.e. at the first public import/require of `fs`. `process.getBuiltinModule`
// (Node >= 20.16) returns that object through the internal loader without
// creating the facade, so a property added here before anything imports `fs`
// becomes a real named export. Nothing else may import `fs` before this file
// runs, so keep it the first `--import` and import nothing but `node:module`
// at the top level. The glob implementation (`glob`, pinned in
// tests/npm/package.json) is required lazily on the first call, once the
// facade exists. On Node >= 22 this file does nothing.
import { createRequire } from 'node:module';

const fs = process.getBuiltinModule?.('node:fs');
if (!fs) {
  throw new Error(
    `glob-shim.mjs: Node ${process.version} lacks process.getBuiltinModule; need Node >= 20.16`,
  );
}

if (typeof fs.globSync !== 'function') {
  const require = createRequire(new URL('../npm/package.json', import.meta.url));
  fs.globSync = function globSync(pattern, options = {}) {
    if (options.withFileTypes) {
      throw new Error('glob-shim.mjs: fs.globSync({withFileTypes}) is not supported');
    }
    const { globSync: glob } = require('glob');
    const opts = { cwd: options.cwd ?? process.cwd() };
    if (Array.isArray(options.exclude)) opts.ignore = options.exclude;
    else if (typeof options.exclude === 'function') {
      opts.ignore = { ignored: (p) => options.exclude(p.relative()) };
    }
    return glob(pattern, opts);
  };
  // Self-check: creates the `fs` facade now; fails loudly if it was created
  // before this file ran (another preload imported `fs` first).
  const ns = await import('node:fs');
  if (typeof ns.globSync !== 'function') {
    throw new Error(
      'glob-shim.mjs: `fs` was imported before the shim ran; load it as the first --import',
    );
  }
}
