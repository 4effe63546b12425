// Drives the license server's status page in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core; no browser download). Run by tests/status_page.rs, which starts the
// server with a logged-in client and reads this script's stdout, one line per step:
//
//   TOKEN-FORM           a tab without the token shows the token form
//   SEEN <json>          the page lists the session, its login with the AppSlot name, and the
//                        relay-listener state
//   GONE                 after clicking Disconnect the session and its login are gone
//   ERROR <message>      anything else (exit status 1)
//
// Environment: PW_MODULE (playwright-core's folder), CHROMIUM (the executable), PAGE_URL
// (http://host:port/), TOKEN, SESSION_ID, APPSLOT (the AppSlot's name), SITE (the client's
// site).
'use strict';

const { env, launch, run } = require('./launch');

const STEP_MS = 15000;

async function main() {
  const base = env('PAGE_URL');
  const token = env('TOKEN');
  const sessionId = env('SESSION_ID');
  const appslot = env('APPSLOT');
  const site = env('SITE');
  const { context, close } = await launch({});
  try {
    const problems = [];
    context.on('weberror', (e) => problems.push(String(e.error())));

    // A tab without the token asks for it; entering it shows the status.
    // (Its 401 is expected: the console error it logs is not a problem.)
    const first = await context.newPage();
    await first.goto(base);
    await first.getByTestId('token-form').waitFor({ state: 'visible', timeout: STEP_MS });
    console.log('TOKEN-FORM');
    await first.getByTestId('token-input').fill(token);
    await first.getByTestId('token-submit').click();
    await first.getByTestId('sessions-table').waitFor({ state: 'visible', timeout: STEP_MS });
    await first.getByTestId('token-form').waitFor({ state: 'hidden', timeout: STEP_MS });
    await first.close();

    // The operator's link carries the token in the fragment, which the page then removes.
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    await page.goto(`${base}#token=${encodeURIComponent(token)}`);
    const session = page.locator(`[data-testid="session-row"][data-session-id="${sessionId}"]`);
    await session.waitFor({ state: 'visible', timeout: STEP_MS });
    const login = page.locator(`[data-testid="login-row"][data-session-id="${sessionId}"]`);
    await login.waitFor({ state: 'visible', timeout: STEP_MS });
    const seen = {
      hash: await page.evaluate(() => window.location.hash),
      site: await session.getByTestId('session-site').textContent(),
      client: await session.getByTestId('session-client').textContent(),
      loginAppslot: await login.getByTestId('login-appslot').textContent(),
      appslots: await page.getByTestId('appslot-name').allTextContents(),
      taken: await page.locator(`[data-testid="appslot-row"]`).filter({ hasText: appslot })
        .getByTestId('appslot-taken').textContent(),
      listener: await page.getByTestId('listener-connected').textContent(),
    };
    if (seen.loginAppslot !== appslot) throw new Error(`login AppSlot ${seen.loginAppslot} is not ${appslot}`);
    if (seen.site !== site) throw new Error(`site ${seen.site} is not ${site}`);
    console.log('SEEN ' + JSON.stringify(seen));

    await session.getByTestId('disconnect-button').click();
    await session.waitFor({ state: 'detached', timeout: STEP_MS });
    await login.waitFor({ state: 'detached', timeout: STEP_MS });
    const message = await page.getByTestId('status-message').textContent();
    if (!message.includes('disconnected')) throw new Error(`message after Disconnect: ${message}`);
    if (problems.length) throw new Error('page errors: ' + problems.join('; '));
    console.log('GONE');
  } finally {
    await close();
  }
}

run(main);
