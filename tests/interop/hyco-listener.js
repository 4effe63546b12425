'use strict';
// A hyco-ws 1.0.5 listener (Microsoft's Node Hybrid Connections client) for the interop tests.
//
//   node hyco-listener.js LISTEN_URI KEY_NAME KEY [MAX_ERRORS]
//
// LISTEN_URI is built by hand (wss://127.0.0.1:PORT/$hc/HC?sb-hc-action=listen): hyco-ws'
// createRelayListenUri hard-codes wss and :443. The token comes from hyco-ws'
// createRelayToken; passing it as a function makes hyco-ws sign a fresh one per (re)connect.
// Every accepted connection answers each message with its bytes XOR 0x5a, as binary.
//
// stdout lines: LISTENING | CONNECTION <subprotocol or -> (rendezvous open) | CLOSED <bytes received> <close code> |
// ERROR <message> (control channel; hyco-ws then reconnects at once) | GAVE_UP <errors>
// (after MAX_ERRORS errors the script closes the server, which stops the reconnects).

const { load, say, xor, bytes, describe } = require('./common');
const WebSocket = load('hyco-ws');

const [listenUri, keyName, key, maxErrorsArg] = process.argv.slice(2);
const maxErrors = maxErrorsArg ? Number(maxErrorsArg) : 0;
let errors = 0;
let gaveUp = false;

const server = WebSocket.createRelayedServer(
  {
    server: listenUri,
    token: () => WebSocket.createRelayToken(listenUri, keyName, key),
  },
  (ws) => {
    let received = 0;
    // hyco-ws emits 'connection' as soon as it starts dialling the rendezvous address; the
    // subprotocol is known once that WebSocket is open.
    ws.on('open', () => say('CONNECTION', ws.protocol || '-'));
    ws.on('message', (data) => {
      const buf = bytes(data);
      received += buf.length;
      ws.send(xor(buf), { binary: true });
    });
    ws.on('close', (code) => say('CLOSED', received, code));
    ws.on('error', (err) => say('CONNECTION_ERROR', describe(err)));
  },
);

server.on('listening', () => say('LISTENING'));
// Without an 'error' handler hyco-ws' first refused control channel would crash the process.
server.on('error', (err) => {
  errors += 1;
  say('ERROR', describe(err));
  if (maxErrors && errors >= maxErrors && !gaveUp) {
    gaveUp = true;
    say('GAVE_UP', errors);
    try {
      server.close();
    } catch (e) {
      // The control channel may already be gone; closeRequested is set either way.
    }
  }
});
