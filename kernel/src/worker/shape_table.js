// Regenerates shape_table.json: each case's completion value in Node's REPL, the reference
// for the last-expression rule of shape.rs. Run: node kernel/src/worker/shape_table.js
// With --check, compares instead of writing and exits 1 on a difference (the integration test
// tests/tests/repl_rule.rs does that when node is installed). Cases where the kernel
// deliberately differs from Node carry "kernel".
'use strict';
const repl = require('repl');
const { PassThrough } = require('stream');
const fs = require('fs');
const path = require('path');

// [code, kernel value when it deliberately differs from Node's REPL]
const cases = [
  // member access by index, the reported bug
  ['const rows = [5, 7];\nrows[0]'],
  ['const rows = [5, 7];\nrows[rows.length - 1]'],
  ['const a = [[1, 2], [3, 4]];\na[1][0]'],
  ["const o = {k: {j: 4}};\no['k']['j']"],
  ['const o = {k: 3};\no.k'],
  ['const xs = [5, 1, 4, 2, 3];\nconst sorted = [...xs].sort((a, b) => a - b);\nsorted[Math.floor(0.95 * (sorted.length - 1))]'],
  ['const data = {rows: [{v: 1}, {v: 3}]};\ndata.rows[data.rows.length - 1].v'],
  ['const xs = [1, 2, 3];\nxs.map(x => x * 2)[2]'],
  // optional chains
  ['const o = null;\no?.k'],
  ['const o = {k: {j: 2}};\no?.k?.j'],
  ['const o = {k: [1, 2]};\no?.k?.[1]'],
  ['const o = {f() { return 9 }};\no.f?.()'],
  // sequences
  ['1, 2, 3'],
  ['let x = 1;\nx++, x'],
  // await
  ['await Promise.resolve(6)'],
  ['const p = Promise.resolve([1, 2]);\n(await p)[1]'],
  ['const v = await Promise.resolve({a: [7]});\nv.a[0]'],
  // templates
  ["function tag(s, ...v) { return s.raw.join('|') + v.join(',') }\ntag`a${1}b${2}c`"],
  ['const n = 3;\n`n=${n}`'],
  ['`multi\nline`'],
  // new, arrows, classes
  ['class P { constructor(x) { this.x = x } }\nnew P(4)'],
  ['new Date(0).toISOString()'],
  ['(() => 5)()'],
  ['x => x'],
  ['(class A {})'],
  // assignment, update, unary
  ['let a;\na = 7'],
  ['let x = 1;\nx += 2'],
  ['let x = 1;\nx++'],
  ['let x = 1;\n++x'],
  ['-(3)'],
  ['typeof 1'],
  ['!0'],
  ['void 0'],
  ['~5'],
  ['const o = {a: 1};\ndelete o.a'],
  // other operators
  ["const o = {a: 1};\n'a' in o"],
  ["0 || 'fallback'"],
  ["null ?? 'd'"],
  ["true ? 'y' : 'n'"],
  ['2 ** 10'],
  // generators without yield at top level, regex literals
  ['function* g() { yield 1; yield 2 }\n[...g()]'],
  ["/a+/.exec('caaat')[0]"],
  ["'abc'.replace(/b/g, 'x')"],
  ['/x/g.flags'],
  // object literals in statement position
  ['({a: 1})'],
  ['({a: 1}).a'],
  // comments and trailing statements
  ['const v = 1;\n// the answer\nv + 1'],
  ['const v = 2;\nv * 2 // doubled'],
  ['const v = 2;\nv * 2 /* block */'],
  ['const v = 2;\nv\n// trailing comment\n'],
  ['const v = 2;\nv;\n/* a */ // b\n'],
  ['1;;'],
  ['1;\n;\n'],
  // ASI
  ['let a = 1\nlet b = 2\na + b'],
  ['let a = 1\n;[a, a]'],
  ["const s = 'x'\n;(s + s)"],
  ['let i = 0\ni\n++\ni'],
  ['const f = () => 3\nf\n()'],
  // unicode before the expression
  ["const s = 'hé😀';\ns.length"],
  ["const s = 'hé😀';\r\n[s][0]"],
  // last statements that are not expressions: Node gives their completion value
  ['let x = 1'],
  ['var y = 2'],
  ['function f() { return 1 }'],
  ['class C {}'],
  ['if (true) { 5 }', null],
  ['if (false) { 5 } else { 6 }', null],
  ['for (let i = 0; i < 3; i++) { i }', null],
  ['while (false) {}'],
  ['do { 1 } while (false)', null],
  ['try { 4 } finally {}', null],
  ["switch (1) { case 1: 'one' }", null],
  ['1; let z = 2', null],
  ['label: 5', null],
];

async function completion(code) {
  const input = new PassThrough();
  const output = new PassThrough();
  output.resume();
  const server = repl.start({ input, output, prompt: '', terminal: false, useGlobal: false });
  try {
    return await new Promise((resolve) => {
      server.eval(code + '\n', server.context, 'case', (error, value) => {
        if (error) resolve({ error: String(error) });
        else resolve({ value });
      });
    });
  } finally {
    server.close();
  }
}

// The kernel returns results with JSON.stringify semantics; undefined and functions are null.
function asJson(value) {
  const text = JSON.stringify(value);
  return text === undefined ? null : JSON.parse(text);
}

(async () => {
  const table = [];
  for (const [code, kernel] of cases) {
    const result = await completion(code);
    if (result.error) throw new Error(`${JSON.stringify(code)}: ${result.error}`);
    const row = { code, node: asJson(result.value) };
    if (kernel !== undefined) row.kernel = kernel;
    table.push(row);
  }
  const file = path.join(__dirname, 'shape_table.json');
  const text = JSON.stringify(table, null, 1) + '\n';
  if (process.argv.includes('--check')) {
    if (fs.readFileSync(file, 'utf8') !== text) {
      console.error(`${file} differs from Node's REPL; regenerate it:\n${text}`);
      process.exit(1);
    }
    console.log(`${table.length} cases match Node ${process.version}`);
  } else {
    fs.writeFileSync(file, text);
    console.log(`${table.length} cases written to ${file}`);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
