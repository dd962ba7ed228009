// Reference evaluations with OpenFeature's JS flagd evaluator (@openfeature/flagd-core, the
// in-process engine of the JS flagd provider; fractional bucketing v2, as flagd's).
//
// stdin: JSON lines {"file": path, "flag": key, "type": "boolean|string|integer|float|object",
//        "default": value, "context": {...}}
// stdout: one JSON line per request {"value", "variant", "reason", "errorCode", "errorMessage"},
//         in order.
// Run with NODE_PATH pointing at the node_modules that holds @openfeature/flagd-core.
'use strict';

const fs = require('fs');
const readline = require('readline');
const { FlagdCore } = require('@openfeature/flagd-core');

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const cores = new Map();

function core(file) {
  let loaded = cores.get(file);
  if (!loaded) {
    loaded = new FlagdCore(undefined, quiet);
    loaded.setConfigurations(fs.readFileSync(file, 'utf8'));
    cores.set(file, loaded);
  }
  return loaded;
}

const KINDS = { boolean: 'boolean', string: 'string', integer: 'number', float: 'number', object: 'object' };

const out = [];
const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
input.on('line', (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  let answer;
  try {
    const result = core(request.file).resolve(
      KINDS[request.type],
      request.flag,
      request.default,
      request.context,
      quiet,
    );
    answer = {
      value: result.value === undefined ? null : result.value,
      variant: result.variant === undefined ? null : result.variant,
      reason: result.reason,
      errorCode: result.errorCode === undefined ? null : result.errorCode,
      errorMessage: result.errorMessage === undefined ? null : result.errorMessage,
    };
  } catch (error) {
    answer = { value: null, variant: null, reason: 'THROWN', errorCode: String(error && error.message) };
  }
  out.push(JSON.stringify(answer));
});
input.on('close', () => {
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
});
