// The status page's usage charts: seats in use per AppSlot (with its limit) and logins refused
// per site over the chosen period (day, week, month, year), from api/usage?report=series, drawn
// with uPlot (vendored; served by the license server like this file). Hovering shows the
// values in the legend. It uses app.js's api() and draws when app.js has shown the status,
// again after a minute and when the period changes. One chart per AppSlot, one for refusals.
'use strict';

(() => {
  const RELOAD_MS = 60000;
  const DAY_MS = 86400000;
  const PERIODS = { day: DAY_MS, week: 7 * DAY_MS, month: 30 * DAY_MS, year: 365 * DAY_MS };
  // The first is the page's accent colour (tests/browser/usage_charts.js looks for it).
  const COLOURS = ['#1d5fbf', '#c2410c', '#15803d', '#7c3aed', '#b42318', '#0e7490', '#a16207'];
  const HEIGHT = 220;
  const $ = (id) => document.getElementById(id);
  let period = 'week';
  let loadedAt = 0;
  let loading = false;
  // [element, uPlot] of the charts drawn.
  let charts = [];

  const colour = (i) => COLOURS[i % COLOURS.length];
  const whole = (u, values) => values.map((v) => (Number.isInteger(v) ? String(v) : ''));
  const stepped = () => uPlot.paths.stepped({ align: 1 });

  function note(text) {
    $('usage-note').textContent = text;
  }

  // One chart per element, replaced at each load.
  function draw(el, series, data) {
    const chart = new uPlot({
      width: Math.max(320, el.clientWidth),
      height: HEIGHT,
      series: [{}].concat(series),
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [{}, { values: whole, size: 40 }],
      legend: { live: true },
      cursor: { points: { size: 6 } },
      hooks: { draw: [() => { el.dataset.drawn = String(data[0].length); }] },
    }, data, el);
    charts.push([el, chart]);
  }

  // One chart per AppSlot: each has its own limit, and a large one would flatten a small one.
  function seats(s, x) {
    const boxes = s.slots.map((slot, i) => {
      const name = slot.slot_name || 'AppSlot ' + slot.slot;
      const box = document.createElement('div');
      box.className = 'chart-box';
      const title = document.createElement('h4');
      title.textContent = name + ' (AppSlot ' + slot.slot + ')';
      const el = document.createElement('div');
      el.className = 'chart';
      el.dataset.testid = 'seats-chart';
      el.dataset.slot = slot.slot;
      box.append(title, el);
      return [box, el, name, i];
    });
    $('seats-charts').replaceChildren(...boxes.map((b) => b[0]));
    for (const [, el, name, i] of boxes) {
      const slot = s.slots[i];
      draw(el, [
        { label: 'in use', stroke: colour(0), width: 2, paths: stepped() },
        // Half-transparent: the limit is a reference, not the data.
        { label: 'limit', stroke: colour(0) + '80', width: 1, dash: [6, 4], paths: stepped() },
        // An AppSlot's limit is unknown (0) before its first event in the period: no line.
      ], [x, slot.peak, slot.limit.map((v) => v || null)]);
      el.setAttribute('aria-label', 'Seats of ' + name + ' in use over time');
    }
  }

  function refusals(s, x) {
    const sites = new Map();
    for (const slot of s.slots) {
      for (const site of slot.sites) {
        const name = site.site === null ? '(direct)' : site.site;
        const sum = sites.get(name) || new Array(x.length).fill(0);
        site.refusals.forEach((n, i) => { sum[i] += n; });
        sites.set(name, sum);
      }
    }
    // Sites whose clients were never refused have nothing to show.
    const names = Array.from(sites.keys()).filter((n) => sites.get(n).some((v) => v > 0)).sort();
    const series = names.map((name, i) => ({
      label: name, stroke: colour(i), fill: colour(i) + '22', width: 2, paths: stepped(),
    }));
    draw($('refusals-chart'), series, [x].concat(names.map((n) => sites.get(n))));
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const from = new Date(Date.now() - PERIODS[period]).toISOString();
      let result;
      try {
        result = await window.statusPage.api('GET', 'api/usage?report=series&from=' + encodeURIComponent(from));
      } catch (e) {
        note('Cannot read the usage history: ' + e);
        return;
      }
      loadedAt = Date.now();
      if (result.status !== 200 || !result.data) {
        $('usage-charts').hidden = true;
        note((result.data && result.data.error) || 'Cannot read the usage history: ' + result.status);
        return;
      }
      const s = result.data;
      if (s.slots.length === 0) {
        $('usage-charts').hidden = true;
        note('No seat was used or refused in this period.');
        return;
      }
      $('usage-charts').hidden = false;
      for (const [, chart] of charts) chart.destroy();
      charts = [];
      const x = s.times.map((ms) => ms / 1000);
      seats(s, x);
      refusals(s, x);
      const step = s.step_ms >= 3600000 ? s.step_ms / 3600000 + ' h' : s.step_ms / 60000 + ' min';
      note('Per ' + step + ', until ' + new Date(loadedAt).toLocaleTimeString() + '.');
    } finally {
      loading = false;
    }
  }

  function choose(button) {
    period = button.dataset.period;
    for (const b of document.querySelectorAll('[data-period]')) {
      b.setAttribute('aria-pressed', String(b === button));
    }
    load();
  }

  document.addEventListener('DOMContentLoaded', () => {
    for (const b of document.querySelectorAll('[data-period]')) {
      b.addEventListener('click', () => choose(b));
    }
    window.addEventListener('resize', () => {
      for (const [el, chart] of charts) {
        chart.setSize({ width: Math.max(320, el.clientWidth), height: HEIGHT });
      }
    });
  });
  // The status says whether the server keeps history (a state database) at all.
  document.addEventListener('status-shown', (event) => {
    if (!event.detail.store.enabled) {
      $('usage-charts').hidden = true;
      note('No usage history: the server keeps none without a state database (StateDb=).');
      return;
    }
    if (Date.now() - loadedAt >= RELOAD_MS) load();
  });
})();
