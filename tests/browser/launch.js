// Starts Debian's Chromium headless through playwright-core for the status-page scripts
// (status_page.js, usage_charts.js): a fresh profile, no sandbox (tests run as root), nothing
// fetched from the network. Environment: PW_MODULE (playwright-core's folder), CHROMIUM (the
// executable).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

// The browser context (`options` are added to playwright's launch options) and `close()`,
// which ends it and removes its profile.
async function launch(options) {
  const { chromium } = require(env('PW_MODULE'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'dongle-relay-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: env('CHROMIUM'),
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Colours in screenshots are the page's own (usage_charts.js compares them).
      '--force-color-profile=srgb',
    ],
    ...options,
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// What goes wrong in `context`'s pages: `errors` (page errors, and console errors of the pages
// passed to `page()`) and, from before any page script runs, the Content-Security-Policy
// violations they report (`violations(page)`).
async function watch(context) {
  const errors = [];
  context.on('weberror', (e) => errors.push(String(e.error())));
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
    });
  });
  return {
    errors,
    page: (page) => page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); }),
    violations: (page) => page.evaluate(() => window.__cspViolations.slice()),
  };
}

// One line on stdout, `ERROR <stack>`, and exit status 1 when `main` fails.
function run(main) {
  main().then(
    () => process.exit(0),
    (e) => {
      console.log('ERROR ' + String(e && e.stack ? e.stack : e).replace(/\n/g, ' | '));
      process.exit(1);
    },
  );
}

module.exports = { env, launch, run, watch };
