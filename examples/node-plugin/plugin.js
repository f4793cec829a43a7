#!/usr/bin/env node
// A celgate plugin in Node.js, written from docs/protocol.md alone (no celgate code).
//
// Capability: pre_auth. A request carrying an `x-celgate-block` header gets a 403 JSON reply;
// every other request continues unchanged (`proceed`). Every other hook is answered with
// HookReply.error, and every other RPC is left to grpc-js, which answers UNIMPLEMENTED.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');

const COOKIE = '3b0d1f8e-celgate-plugin-v1';
const MAX_MESSAGE = 16 * 1024 * 1024; // the protocol's limit; grpc-js defaults to 4 MiB

function fail(message) {
  process.stderr.write(`celgate plugin (node): ${message}\n`);
  process.exit(1);
}

// 1. Refuse to run unless the host started us (section 2 of docs/protocol.md).
if (process.env.CELGATE_PLUGIN_COOKIE !== COOKIE) {
  fail('this is a celgate plugin: it is started by the celgate host, not run by hand');
}
const versions = (process.env.CELGATE_PLUGIN_PROTOCOL_VERSIONS || '1').split(',').map((v) => v.trim());
if (!versions.includes('1')) fail(`the host accepts protocol versions ${versions}; this plugin speaks 1`);

const manifestPath = process.env.CELGATE_PLUGIN_MANIFEST || path.join(__dirname, 'manifest.json');
const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
if (process.env.CELGATE_PLUGIN_ID && process.env.CELGATE_PLUGIN_ID !== manifest.id) {
  fail(`the host started plugin ${process.env.CELGATE_PLUGIN_ID} but this manifest says ${manifest.id}`);
}

// 2. The wire contract: protos/celgate/v1/*.proto from the repository, loaded at runtime.
const protos = process.env.CELGATE_PROTOS_DIR || path.resolve(__dirname, '..', '..', 'protos');
const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const v1 = grpc.loadPackageDefinition(
  loader.loadSync(['celgate/v1/plugin.proto'], { ...options, includeDirs: [protos] })
).celgate.v1;
const health = grpc.loadPackageDefinition(loader.loadSync(path.join(__dirname, 'health.proto'), options)).grpc
  .health.v1;

// The operator's config (this plugin takes none, but keeps what Configure sends).
let config = {};

function headerValues(request, name) {
  return (request.headers || []).filter((h) => h.name.toLowerCase() === name).map((h) => h.value);
}

function preAuth(ctx) {
  const request = (ctx && ctx.request) || {};
  if (headerValues(request, 'x-celgate-block').length > 0) {
    const body = Buffer.from(JSON.stringify({ error: { message: 'blocked by node-header-guard' } }));
    return {
      reply: { status: 403, headers: [{ name: 'content-type', value: 'application/json' }], body },
    };
  }
  return { proceed: {} };
}

function answer(call) {
  // Copy call_id; one reply per call; handler failures become HookReply.error (section 4).
  try {
    if (call.hook === 'pre_auth') return { call_id: call.call_id, request: preAuth(call.pre_auth) };
    return { call_id: call.call_id, error: `node-header-guard does not implement ${call.hook || 'this hook'}` };
  } catch (err) {
    return { call_id: call.call_id, error: `${err && err.name}: ${err && err.message}` };
  }
}

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  // The host keeps its Hooks stream open: give calls in flight a moment, then go.
  setTimeout(() => process.exit(code), 100).unref();
  server.tryShutdown(() => process.exit(code));
}

const server = new grpc.Server({
  'grpc.max_receive_message_length': MAX_MESSAGE,
  'grpc.max_send_message_length': MAX_MESSAGE,
});

server.addService(v1.PluginService.service, {
  GetManifest: (_call, cb) =>
    cb(null, { manifest_json: JSON.stringify(manifest), capabilities: ['pre_auth'], response_chunks: false }),
  GetConfigSchema: (_call, cb) => cb(null, { schema_json: '' }),
  Configure: (call, cb) => {
    const req = call.request;
    if (req.plugin_id && req.plugin_id !== manifest.id) {
      return cb(null, { ok: false, error: `host configures ${req.plugin_id}, this is ${manifest.id}` });
    }
    try {
      config = req.config_json ? JSON.parse(req.config_json) : {};
    } catch (err) {
      return cb(null, { ok: false, error: `config is not JSON: ${err.message}` });
    }
    return cb(null, { ok: true });
  },
  Shutdown: (call, cb) => {
    cb(null, {});
    // Finish in-flight work (none is kept here), then exit well within grace_ms.
    setTimeout(() => stop(0), Math.min(50, Number(call.request.grace_ms) || 50));
  },
  Hooks: (stream) => {
    stream.on('data', (call) => stream.write(answer(call)));
    stream.on('end', () => stream.end());
    stream.on('error', () => {});
  },
});

server.addService(health.Health.service, {
  Check: (_call, cb) => cb(null, { status: stopping ? 'NOT_SERVING' : 'SERVING' }),
  Watch: (call) => call.write({ status: 'SERVING' }),
});

// 3. Listen on a unix socket in a fresh private folder, then print the handshake line.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'celgate-plugin-'));
fs.chmodSync(dir, 0o700);
const sock = path.join(dir, 'plugin.sock');
server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) fail(`cannot listen on ${sock}: ${err.message}`);
  process.stdout.write(`1|1|unix|${sock}|grpc\n`);
});

// 4. Exit when the host goes away (stdin EOF) or asks us to (SIGTERM).
process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(0));
process.stdin.resume();
process.on('SIGTERM', () => stop(0));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
