'use strict';
// SAS tokens as Microsoft's Node clients make them, for the interop tests.
//
//   node sas.js token URI KEY_NAME KEY TTL_SECS
//     prints `HTTPS <token>` from hyco-https' createRelayToken and `WS <token>` from hyco-ws'
//     (the two functions are the same code; both are printed so the tests check both).
//   node sas.js verify TOKEN KEY
//     recomputes the signature of TOKEN's sr and se with KEY exactly as createRelayToken
//     signs (HMAC-SHA256 over the encoded sr, "\n", se; key = the key string's UTF-8 bytes)
//     and checks that sr is encoded as encodeURIComponent would; prints VALID or
//     INVALID <reason>.

const crypto = require('crypto');
const { load, say } = require('./common');

const [mode, ...args] = process.argv.slice(2);

function fields(token) {
  const prefix = 'SharedAccessSignature ';
  if (!token.startsWith(prefix)) {
    return null;
  }
  const out = {};
  for (const part of token.slice(prefix.length).split('&')) {
    const eq = part.indexOf('=');
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

if (mode === 'token') {
  const [uri, keyName, key, ttl] = args;
  say('HTTPS', load('hyco-https').createRelayToken(uri, keyName, key, Number(ttl)));
  say('WS', load('hyco-ws').createRelayToken(uri, keyName, key, Number(ttl)));
} else if (mode === 'verify') {
  const [token, key] = args;
  const f = fields(token);
  if (!f || !f.sr || !f.sig || !f.se) {
    say('INVALID', 'malformed');
  } else if (encodeURIComponent(decodeURIComponent(f.sr)) !== f.sr) {
    say('INVALID', 'sr not encoded as encodeURIComponent');
  } else {
    const hmac = crypto.createHmac('sha256', key);
    hmac.update(f.sr + '\n' + f.se);
    const expected = hmac.digest('base64');
    say(expected === decodeURIComponent(f.sig) ? 'VALID' : 'INVALID signature');
  }
} else {
  say('USAGE', 'sas.js token URI KEY_NAME KEY TTL | sas.js verify TOKEN KEY');
  process.exitCode = 2;
}
