// Checks the headquarters page (dongle-relay hq) in headless Chromium. Run by tests/hq_view.rs,
// which starts two dongle hosts (one through the relay) and a host that is down; prints one
// line:
//
//   HQ <json>            what the page shows: per host section its name, data-reachable, error
//                        text, the AppSlots' in-use cells and whether its chart was drawn; the
//                        combined table's rows; the CSP violations and console errors seen
//   ERROR <message>      anything else (exit status 1)
//
// Environment: PW_MODULE, CHROMIUM, PAGE_URL, TOKEN (the headquarters' token), HOSTS (how
// many host sections to wait for), CHARTS (how many drawn charts to wait for); SCREENSHOT, if
// set: where a screenshot of the whole page is written (docs/hq-view.png is one).
'use strict';

const { env, launch, run, watch } = require('./launch');

const STEP_MS = 20000;

async function main() {
  const base = env('PAGE_URL');
  const token = env('TOKEN');
  const hosts = Number(env('HOSTS'));
  const charts = Number(env('CHARTS'));
  const { context, close } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    const problems = await watch(context);
    const page = await context.newPage();
    problems.page(page);
    await page.goto(`${base}#token=${encodeURIComponent(token)}`);
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="host"]').length === n,
      hosts, { timeout: STEP_MS });
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="host-chart"][data-drawn]').length === n,
      charts, { timeout: STEP_MS });
    const seen = await page.evaluate(() => ({
      hash: window.location.hash,
      hosts: Array.from(document.querySelectorAll('[data-testid="host"]')).map((h) => ({
        name: h.dataset.host,
        reachable: h.dataset.reachable,
        error: (h.querySelector('[data-testid="host-error"]') || {}).textContent || null,
        taken: Array.from(h.querySelectorAll('[data-testid="host-slot"] [data-testid="taken"]'))
          .map((c) => c.textContent),
        chart: !!h.querySelector('[data-testid="host-chart"][data-drawn] canvas'),
      })),
      combined: Array.from(document.querySelectorAll('[data-testid="combined-row"]')).map((r) => ({
        host: r.dataset.host,
        slot: r.dataset.slot,
        taken: r.querySelector('[data-testid="taken"]').textContent,
        peak: r.querySelector('[data-testid="peak"]').textContent,
        refusals: r.querySelector('[data-testid="refusals"]').textContent,
      })),
      summary: document.getElementById('summary').textContent,
    }));
    seen.violations = await problems.violations(page);
    seen.errors = problems.errors;
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    console.log('HQ ' + JSON.stringify(seen));
  } finally {
    await close();
  }
}

run(main);
