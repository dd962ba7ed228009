// The JS flagd provider (@openfeature/flagd-provider on @openfeature/server-sdk, unmodified)
// against flag-service, driven by test_js_provider.py.
//
// stdin: {"host", "port", "mode": "rpc"|"in-process", "selector"?, "evaluations": [{flag, type,
//         default, context}], "change"?: {"path", "documents": [...], "flag"}}
// stdout: {"evaluations": [{value, variant, reason, errorCode, flagMetadata}],
//          "changes": [{flagsChanged, latencyMs, valueAfter}]}
// Each change document is written to a temp file and renamed over `path`; the time from the
// rename to the PROVIDER_CONFIGURATION_CHANGED handler is measured.
'use strict';

const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const { OpenFeature, ProviderEvents } = require('@openfeature/server-sdk');
const { FlagdProvider } = require('@openfeature/flagd-provider');

const METHODS = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  integer: 'getNumberDetails',
  float: 'getNumberDetails',
  object: 'getObjectDetails',
};

function readStdin() {
  return new Promise((resolve) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolve(JSON.parse(text)));
  });
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function main() {
  const input = await readStdin();
  const provider = new FlagdProvider({
    host: input.host,
    port: input.port,
    resolverType: input.mode,
    selector: input.selector,
    cache: 'disabled',
    deadlineMs: 5000,
    retryBackoffMs: 500,
    retryBackoffMaxMs: 1000,
  });
  const domain = `e2e-${input.mode}`;
  await withTimeout(OpenFeature.setProviderAndWait(domain, provider), 15000, 'the provider to become ready');
  const client = OpenFeature.getClient(domain);

  const evaluations = [];
  for (const request of input.evaluations || []) {
    const details = await client[METHODS[request.type]](request.flag, request.default, request.context || {});
    evaluations.push({
      value: details.value === undefined ? null : details.value,
      variant: details.variant === undefined ? null : details.variant,
      reason: details.reason === undefined ? null : details.reason,
      errorCode: details.errorCode === undefined ? null : details.errorCode,
      flagMetadata: details.flagMetadata || {},
    });
  }

  const changes = [];
  if (input.change) {
    let waiting = null;
    client.addHandler(ProviderEvents.ConfigurationChanged, (details) => {
      if (waiting) waiting({ at: performance.now(), flagsChanged: (details && details.flagsChanged) || [] });
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const document of input.change.documents) {
      const seen = new Promise((resolve) => (waiting = resolve));
      const temp = path.join(path.dirname(input.change.path), `.${path.basename(input.change.path)}.js.tmp`);
      fs.writeFileSync(temp, JSON.stringify(document, null, 2));
      fs.renameSync(temp, input.change.path);
      const renamedAt = performance.now();
      const event = await withTimeout(seen, 10000, 'PROVIDER_CONFIGURATION_CHANGED');
      waiting = null;
      const after = await client.getStringDetails(input.change.flag, 'x', {});
      changes.push({ flagsChanged: event.flagsChanged, latencyMs: event.at - renamedAt, valueAfter: after.value });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  process.stdout.write(JSON.stringify({ evaluations, changes }) + '\n');
  await OpenFeature.close();
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
