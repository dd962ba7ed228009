#!/usr/bin/env node
// OpenFeature's JS flagd evaluator (@openfeature/flagd-core, in-process, synchronous) on the same
// flags (../flags.json) and the same 64 contexts (../contexts.json) as the Rust criterion bench.
//
// Per case: a warm-up (so V8 has optimised the evaluator and json-logic-engine has compiled the
// rules), then BATCHES batches of N evaluations each, cases interleaved batch by batch so that a
// burst of load elsewhere on the machine hits every case alike. Each evaluation takes the next of
// the 64 contexts (built once, like a server holding parsed contexts). Prints one JSON object on
// stdout: median / min / max ns per evaluation per case, plus the fractional assignment of every
// context (the caller checks it against flag-engine's, since both implement flagd's bucketing v2).
//
// Usage: node bench.js [--batches 15] [--n 200000] [--warmup 100000]
'use strict';

const fs = require('fs');
const path = require('path');
const { FlagdCore } = require('@openfeature/flagd-core');

function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

const BATCHES = option('batches', 15);
const N = option('n', 200000);
const WARMUP = option('warmup', 100000);

const root = path.join(__dirname, '..');
const core = new FlagdCore();
core.setConfigurations(fs.readFileSync(path.join(root, 'flags.json'), 'utf8'));
const contexts = JSON.parse(fs.readFileSync(path.join(root, 'contexts.json'), 'utf8')).contexts;
const POOL = contexts.length;
if ((POOL & (POOL - 1)) !== 0) throw new Error('the context pool size must be a power of two');

// [case, flag key, resolver, caller default, check of one result]
const COLOURS = new Set(['red', 'blue', 'green', 'yellow']);
const isOn = (r) => r.value === true && r.variant === 'on';
const CASES = [
  ['static', 'static-bool', core.resolveBooleanEvaluation.bind(core), false, (r) => isOn(r) && r.reason === 'STATIC'],
  ['targeting', 'targeted', core.resolveBooleanEvaluation.bind(core), false, (r) => isOn(r) && r.reason === 'TARGETING_MATCH'],
  ['fractional', 'fractional', core.resolveStringEvaluation.bind(core), 'none', (r) => COLOURS.has(r.variant) && r.reason === 'TARGETING_MATCH'],
  ['sem_ver', 'semver', core.resolveBooleanEvaluation.bind(core), false, (r) => isOn(r) && r.reason === 'TARGETING_MATCH'],
];

// Every case gives the expected answer for every context before anything is timed.
const assignments = {};
for (const [name, key, resolve, fallback, ok] of CASES) {
  for (const context of contexts) {
    const result = resolve(key, fallback, context);
    if (!ok(result)) throw new Error(`${name}: unexpected result ${JSON.stringify(result)} for ${JSON.stringify(context)}`);
    if (name === 'fractional') assignments[context.targetingKey] = result.variant;
  }
}

let sink = 0;
function run(resolve, key, fallback, count) {
  let seen = 0;
  for (let i = 0; i < count; i++) {
    const result = resolve(key, fallback, contexts[i & (POOL - 1)]);
    if (result.variant !== undefined) seen++;
  }
  sink += seen;
}

for (const [, key, resolve, fallback] of CASES) run(resolve, key, fallback, WARMUP);

const samples = Object.fromEntries(CASES.map(([name]) => [name, []]));
for (let batch = 0; batch < BATCHES; batch++) {
  for (let c = 0; c < CASES.length; c++) {
    // Rotate which case goes first, so none always follows the same neighbour.
    const [name, key, resolve, fallback] = CASES[(c + batch) % CASES.length];
    const start = process.hrtime.bigint();
    run(resolve, key, fallback, N);
    const elapsed = Number(process.hrtime.bigint() - start);
    samples[name].push(elapsed / N);
  }
}
if (sink !== (WARMUP + BATCHES * N) * CASES.length) throw new Error('an evaluation returned no variant');

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value) => Math.round(value * 10) / 10;
const version = (name) =>
  JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules', name, 'package.json'), 'utf8')).version;

const cases = {};
for (const [name] of CASES) {
  cases[name] = {
    median_ns: round(median(samples[name])),
    min_ns: round(Math.min(...samples[name])),
    max_ns: round(Math.max(...samples[name])),
  };
}
process.stdout.write(
  JSON.stringify({
    engine: '@openfeature/flagd-core',
    version: version('@openfeature/flagd-core'),
    json_logic_engine: version('json-logic-engine'),
    node: process.version,
    batches: BATCHES,
    evaluations_per_batch: N,
    warmup_per_case: WARMUP,
    cases,
    fractional_assignments: assignments,
  }) + '\n',
);
