'use strict';
// A hyco-https 1.4.5 listener whose control channel sends unsolicited WebSocket pongs as
// keep-alive (its `keepAliveTimeout` option), the way Microsoft's clients keep NAT mappings
// alive. The interop tests check that the relay keeps such a listener registered.
//
//   node hyco-https-keepalive.js LISTEN_URI KEY_NAME KEY INTERVAL_MS PONGS
//
// stdout lines: LISTENING | PONGED <n> (after n keep-alive pongs went out) | ERROR <message> |
// CHANNEL_CLOSED <code> (the control channel closed; hyco-https would reconnect)

const { load, say, describe } = require('./common');
const https = load('hyco-https');
const moment = load('moment');

const [listenUri, keyName, key, intervalMs, pongsArg] = process.argv.slice(2);
const target = Number(pongsArg);
let pongs = 0;

const server = https.createRelayedServer(
  {
    server: listenUri,
    token: () => https.createRelayToken(listenUri, keyName, key),
    keepAliveTimeout: moment.duration(Number(intervalMs), 'milliseconds'),
  },
  (req, res) => {
    res.end();
  },
);

server.on('listening', () => {
  say('LISTENING');
  // Count the keep-alive pongs hyco-https sends on this control channel.
  const channel = server.controlChannel;
  const pong = channel.pong.bind(channel);
  channel.pong = (...args) => {
    pong(...args);
    pongs += 1;
    if (pongs === target) {
      say('PONGED', pongs);
    }
  };
  channel.on('close', (code) => say('CHANNEL_CLOSED', code));
});
server.on('error', (err) => say('ERROR', describe(err)));
server.listen();
