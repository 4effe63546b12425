'use strict';
// A hyco-https 1.4.5 HTTP server (`createRelayedServer`) for the HTTP-mode interop tests: it
// serves plain HTTP requests that reach our relay at https://relay/{hc}/... .
//
//   node hyco-https-server.js LISTEN_URI KEY_NAME KEY
//
// Every request is answered 200 with its body XOR 0x5a, and headers naming what arrived:
// x-method, x-url, x-received (body bytes), x-app (the request's x-app header, if any) and
// x-auth (whether an Authorization header reached the listener). A request with header
// x-answer-bytes: N is answered with N bytes of 0x07 instead (a large response to a small
// request, which hyco-https sends over the request's rendezvous).
//
// stdout lines: LISTENING | REQUEST <method> <url> <bytes> | ERROR <message>

const { load, say, xor, describe } = require('./common');
const https = load('hyco-https');

const [listenUri, keyName, key] = process.argv.slice(2);

const server = https.createRelayedServer(
  {
    server: listenUri,
    token: () => https.createRelayToken(listenUri, keyName, key),
  },
  (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(Buffer.from(chunk)));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const answerBytes = req.headers['x-answer-bytes'];
      const answer = answerBytes ? Buffer.alloc(Number(answerBytes), 7) : xor(body);
      say('REQUEST', req.method, req.url, body.length);
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('x-method', req.method);
      res.setHeader('x-url', req.url);
      res.setHeader('x-received', String(body.length));
      res.setHeader('x-app', req.headers['x-app'] || '-');
      res.setHeader('x-auth', req.headers['authorization'] ? 'yes' : 'no');
      res.statusCode = 200;
      // hyco-https sends nothing at all for end() with an empty Buffer.
      if (answer.length) {
        res.end(answer);
      } else {
        res.end();
      }
    });
  },
);

server.on('listening', () => say('LISTENING'));
server.on('error', (err) => say('ERROR', describe(err)));
server.listen();
