// Checks the status page's usage charts in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core). Run by tests/status_page.rs, which starts a server with a week of usage
// history; prints one line:
//
//   CHARTS <json>        what was measured (see below)
//   ERROR <message>      anything else (exit status 1)
//
// The json holds, for each chart ("seats", "refusals"), the pixels of its screenshot in the
// first series colour (#1d5fbf, charts.js's COLOURS[0]) with their topmost and lowest rows, and
// the chart's size; "csp" the page's Content-Security-Policy header; "violations" the CSP
// violations the page reported while loading and drawing; "control" those reported after the
// script then adds an inline <style> itself (must be one: proves violations are seen);
// "errors" console errors and page errors; "legend" the first seats chart's legend labels;
// "titles" the seats charts' titles.
//
// Environment: PW_MODULE, CHROMIUM, PAGE_URL, TOKEN (as status_page.js), SCREENSHOT (where the
// screenshot of the page's usage section is written: docs/usage-charts.png is one).
'use strict';

const { env, launch, run, watch } = require('./launch');

const STEP_MS = 15000;
const SERIES_RGB = [0x1d, 0x5f, 0xbf];
const TOLERANCE = 40;

// Counts the pixels of a PNG near `rgb`, decoding it in a blank page (no PNG library needed).
async function pixels(blank, png, rgb) {
  return blank.evaluate(async ({ b64, rgb, tol }) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + b64;
    await img.decode();
    const canvas = document.createElement('canvas');
    canvas.width = img.width;
    canvas.height = img.height;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, img.width, img.height).data;
    let count = 0;
    let top = -1;
    let bottom = -1;
    for (let y = 0; y < img.height; y++) {
      for (let x = 0; x < img.width; x++) {
        const i = (y * img.width + x) * 4;
        if (Math.abs(d[i] - rgb[0]) <= tol && Math.abs(d[i + 1] - rgb[1]) <= tol &&
            Math.abs(d[i + 2] - rgb[2]) <= tol) {
          count++;
          if (top < 0) top = y;
          bottom = y;
        }
      }
    }
    return { count, top, bottom, width: img.width, height: img.height };
  }, { b64: png.toString('base64'), rgb, tol: TOLERANCE });
}

async function main() {
  const base = env('PAGE_URL');
  const token = env('TOKEN');
  const { context, close } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    const problems = await watch(context);
    const { errors } = problems;
    const page = await context.newPage();
    problems.page(page);
    const response = await page.goto(`${base}#token=${encodeURIComponent(token)}`);
    const csp = response.headers()['content-security-policy'] || '';
    const seats = page.getByTestId('seats-chart').first();
    const refusals = page.getByTestId('refusals-chart');
    // charts.js marks a chart once uPlot has drawn it.
    await page.locator('[data-testid="seats-chart"][data-drawn]').first().waitFor({ timeout: STEP_MS });
    await page.locator('[data-testid="refusals-chart"][data-drawn]').waitFor({ timeout: STEP_MS });
    await page.getByTestId('appslot-row').first().waitFor({ timeout: STEP_MS });
    await page.getByTestId('usage-section').screenshot({ path: env('SCREENSHOT') });
    const seatsPng = await seats.locator('canvas').screenshot();
    const refusalsPng = await refusals.locator('canvas').screenshot();
    const legend = await seats.locator('.u-legend .u-label').allTextContents();
    const titles = await page.locator('#seats-charts h4').allTextContents();
    const violations = await problems.violations(page);
    // The control below logs its own console error: keep those seen before it.
    const seenErrors = errors.slice();
    // The control: an inline style sheet must be blocked and reported.
    await page.evaluate(() => {
      const style = document.createElement('style');
      style.textContent = 'body { color: red; }';
      document.head.appendChild(style);
    });
    await page.waitForFunction((n) => window.__cspViolations.length > n, violations.length,
      { timeout: STEP_MS });
    const control = (await problems.violations(page)).slice(violations.length);

    const blank = await context.newPage();
    const out = {
      seats: await pixels(blank, seatsPng, SERIES_RGB),
      refusals: await pixels(blank, refusalsPng, SERIES_RGB),
      csp,
      violations,
      control,
      errors: seenErrors,
      legend,
      titles,
    };
    console.log('CHARTS ' + JSON.stringify(out));
  } finally {
    await close();
  }
}

run(main);
