'use strict';
// A hyco-ws 1.0.5 sender for the interop tests.
//
//   node hyco-sender.js SEND_URI KEY_NAME KEY PAYLOAD_FILE
//
// Connects with relayedConnect (token from createRelayToken in the ServiceBusAuthorization
// header), sends the file's bytes as 64 KiB binary messages and expects every byte back
// XOR 0x5a (the test's TCP target transforms them), then closes with 1000.
//
// stdout lines: OPEN | OK <bytes> | MISMATCH <offset> | ERROR <message> | CLOSED <code>

const fs = require('fs');
const { load, say, xor, bytes, describe } = require('./common');
const WebSocket = load('hyco-ws');

const [sendUri, keyName, key, payloadFile] = process.argv.slice(2);
const payload = fs.readFileSync(payloadFile);
const expected = xor(payload);
const token = WebSocket.createRelayToken(sendUri, keyName, key);
const chunks = [];
let received = 0;
let done = false;

const ws = WebSocket.relayedConnect(sendUri, token, (socket) => {
  say('OPEN');
  for (let at = 0; at < payload.length; at += 64 * 1024) {
    socket.send(payload.subarray(at, at + 64 * 1024), { binary: true });
  }
});

ws.on('message', (data) => {
  const buf = bytes(data);
  chunks.push(buf);
  received += buf.length;
  if (done || received < expected.length) {
    return;
  }
  done = true;
  const got = Buffer.concat(chunks);
  if (got.length === expected.length && got.equals(expected)) {
    say('OK', got.length);
  } else {
    let at = 0;
    while (at < got.length && got[at] === expected[at]) {
      at += 1;
    }
    say('MISMATCH', at);
  }
  ws.close(1000);
});
ws.on('error', (err) => say('ERROR', describe(err)));
ws.on('close', (code) => {
  say('CLOSED', code);
  process.exitCode = done ? 0 : 1;
});
