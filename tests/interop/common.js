'use strict';
// Shared by the interop scripts: loads Microsoft's Node HC clients from the directory the
// Rust tests pass in DONGLE_RELAY_NODE_MODULES (scripts/setup-node-interop.sh installs them),
// and prints one status line per event on stdout, which the tests wait on.

const http = require('http');
const https = require('https');
const path = require('path');

// INTEROP_LOCAL_ADDRESS=127.0.0.2 makes every outgoing HTTP(S) request (ws 1.1.5 opens its
// WebSockets through http(s).request) leave from that loopback address, so one machine can
// play two hosts: the relay's per-IP limits then tell this client apart from the test's
// others, which use 127.0.0.1. Only the source address changes; hyco-ws is untouched.
const localAddress = process.env.INTEROP_LOCAL_ADDRESS;
if (localAddress) {
  for (const mod of [http, https]) {
    const request = mod.request;
    mod.request = function (options, ...rest) {
      if (options && typeof options === 'object' && !(options instanceof URL)) {
        options = Object.assign({}, options, { localAddress });
      }
      return request.call(mod, options, ...rest);
    };
  }
}

function load(name) {
  const dir = process.env.DONGLE_RELAY_NODE_MODULES;
  if (!dir) {
    throw new Error('DONGLE_RELAY_NODE_MODULES is not set');
  }
  return require(path.join(dir, name));
}

function say(...words) {
  process.stdout.write(words.join(' ') + '\n');
}

// Both directions of the interop tests transform every byte this way, so a peer that merely
// reflected the data back could not pass.
const XOR = 0x5a;

function xor(buf) {
  const out = Buffer.allocUnsafe(buf.length);
  for (let i = 0; i < buf.length; i++) {
    out[i] = buf[i] ^ XOR;
  }
  return out;
}

// ws 1.1.5 hands text messages over as strings and binary ones as Buffers.
function bytes(data) {
  return Buffer.isBuffer(data) ? data : Buffer.from(data);
}

function describe(err) {
  if (err && err.message) {
    return err.message;
  }
  return String(err);
}

module.exports = { load, say, xor, bytes, describe };
