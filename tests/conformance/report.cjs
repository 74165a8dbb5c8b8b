// Verdicts for tests/conformance/run.sh (which sets the environment):
//   node report.cjs check    validate the skip list against `list --server` (exit 2 if bad)
//   node report.cjs report   one line per scenario from OUT/server-<scenario>-<ts>/checks.json,
//                            a summary line; exit 1 if a scenario not skipped failed
const fs = require('fs');
const path = require('path');
const { SCENARIOS, SKIP_FILE, OUT, SUITE, CLI_RC } = process.env;
const mode = process.argv[2]; // `check`: validate the skip list only; `report`: verdicts

// `list --server` lines: "  - name [2025-06-18,2025-11-25]"
const all = [...SCENARIOS.matchAll(/^\s+- (\S+)/gm)].map((m) => m[1]);
if (all.length === 0) {
  console.error(`run.sh: no scenario in the output of \`list --server\`:\n${SCENARIOS}`);
  process.exit(2);
}

const skip = new Map();
let bad = false;
fs.readFileSync(SKIP_FILE, 'utf8').split('\n').forEach((line, i) => {
  const t = line.trim();
  if (t === '' || t.startsWith('#')) return;
  const m = /^(\S+)\s+#\s*(\S.*)$/.exec(t);
  if (!m) {
    console.error(`run.sh: ${SKIP_FILE}:${i + 1}: expected \`scenario-name # reason\``);
    bad = true;
  } else if (!all.includes(m[1])) {
    console.error(`run.sh: ${SKIP_FILE}:${i + 1}: no server scenario named ${m[1]}`);
    bad = true;
  } else {
    skip.set(m[1], m[2]);
  }
});
if (bad) process.exit(2);
if (mode === 'check') process.exit(0);

// Result directories are server-<scenario>-<ISO timestamp with - for : and .>
const dirs = new Map();
for (const d of fs.readdirSync(OUT)) {
  const m = /^server-(.+)-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z$/.exec(d);
  if (m) dirs.set(m[1], path.join(OUT, d));
}

let pass = 0, fail = 0, na = 0;
for (const name of all) {
  let verdict, note;
  const dir = dirs.get(name);
  let checks = null;
  if (dir) {
    try { checks = JSON.parse(fs.readFileSync(path.join(dir, 'checks.json'), 'utf8')); }
    catch (e) { note = `unreadable checks.json: ${e.message}`; }
  }
  if (checks) {
    const n = (s) => checks.filter((c) => c.status === s).length;
    const failures = checks.filter((c) => c.status === 'FAILURE');
    const warnings = checks.filter((c) => c.status === 'WARNING');
    verdict = failures.length === 0 ? 'PASS' : 'FAIL';
    note = `${n('SUCCESS')} ok, ${failures.length} failed, ${warnings.length} warnings`;
    const first = failures[0] ?? warnings[0];
    if (first) note += `; ${first.id}: ${first.errorMessage ?? first.description}`;
  } else if (!note) {
    // Pending scenarios are not run with CONFORMANCE_SUITE=active, and vice versa.
    note = 'no result (not in the selected suite, or the CLI stopped early)';
    verdict = 'NONE';
  } else {
    verdict = 'FAIL';
  }
  if (skip.has(name)) {
    na++;
    console.log(`N/A  ${name} [${verdict.toLowerCase()} here] # ${skip.get(name)}`);
  } else if (verdict === 'PASS') {
    pass++;
    console.log(`PASS ${name} (${note})`);
  } else if (verdict === 'NONE' && SUITE !== 'all') {
    na++;
    console.log(`N/A  ${name} [not run] # not in suite ${SUITE}`);
  } else {
    fail++;
    console.log(`FAIL ${name} (${note})`);
  }
}
if (CLI_RC !== '0' && CLI_RC !== '1') {
  console.log(`FAIL conformance CLI exited with status ${CLI_RC} (124 = timed out); see ${OUT}/cli.log`);
  fail++;
}
console.log(`conformance summary: ${pass} pass, ${fail} fail, ${na} not applicable`);
process.exit(fail > 0 ? 1 : 0);
