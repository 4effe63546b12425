// The headquarters page: reads api/hosts (every dongle host's status and usage, fetched by the
// headquarters server) with the headquarters' bearer token every 30 s and when the period
// changes; shows the combined table, then per host its AppSlots now, its usage summary and a
// chart of its seats in use (uPlot, vendored; one line per AppSlot), or the host's error.
'use strict';

(() => {
  const REFRESH_MS = 30000;
  const token = window.pageToken('dongle-relay-hq-token');
  const DAY_MS = 86400000;
  const PERIODS = { day: DAY_MS, week: 7 * DAY_MS, month: 30 * DAY_MS, year: 365 * DAY_MS };
  const COLOURS = ['#1d5fbf', '#c2410c', '#15803d', '#7c3aed', '#b42318', '#0e7490', '#a16207'];
  const $ = (id) => document.getElementById(id);
  let period = 'week';
  let charts = [];
  let busy = false;

  function message(text, kind) {
    $('message').textContent = text;
    $('message').className = 'message' + (kind ? ' ' + kind : '');
  }

  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else e.dataset[k] = v;
    }
    return e;
  }

  function row(cells, attrs) {
    const tr = el('tr', null, attrs);
    for (const [text, cls, testid] of cells) {
      const td = el('td', text, testid ? { testid } : {});
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    return tr;
  }

  const num = (v, digits) => (v === null || v === undefined ? '–' : digits ? v.toFixed(digits) : v);

  function combined(rows) {
    $('combined').replaceChildren(...rows.map((r) => row([
      [r.host], [r.dongle], [r.slot, 'num'], [r.slot_name],
      [r.limit, 'num', 'limit'], [r.taken, r.taken >= r.limit && r.limit > 0 ? 'num full' : 'num', 'taken'],
      [num(r.peak), 'num', 'peak'], [num(r.average, 2), 'num'], [num(r.hours_at_limit, 1), 'num'],
      [num(r.refusals), 'num', 'refusals'],
    ], { testid: 'combined-row', host: r.host, slot: r.slot })));
  }

  // Drawn once `div` is in the page: uPlot takes its width.
  function chart(div, series) {
    const slots = series.slots;
    const x = series.times.map((ms) => ms / 1000);
    const lines = slots.map((s, i) => ({
      label: (s.slot_name || 'AppSlot ' + s.slot) + ' in use',
      stroke: COLOURS[i % COLOURS.length], width: 2, paths: uPlot.paths.stepped({ align: 1 }),
    }));
    const u = new uPlot({
      width: Math.max(320, div.clientWidth), height: 200,
      series: [{}].concat(lines),
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [{}, { values: (u, v) => v.map((n) => (Number.isInteger(n) ? String(n) : '')), size: 40 }],
      legend: { live: true },
      hooks: { draw: [() => { div.dataset.drawn = String(x.length); }] },
    }, [x].concat(slots.map((s) => s.peak)), div);
    charts.push(u);
  }

  // A host's section; its chart (if any) goes to `pending`, to be drawn once in the page.
  function host(h, pending) {
    const box = el('section', null, { testid: 'host', host: h.name, reachable: String(h.reachable) });
    box.appendChild(el('h2', h.name));
    box.appendChild(el('p', 'via ' + h.via, { class: 'muted' }));
    if (!h.reachable) {
      box.appendChild(el('p', 'Unreachable: ' + h.error, { class: 'state-bad', testid: 'host-error' }));
      return box;
    }
    const facts = [
      'version ' + h.version,
      h.live ? 'live' : 'NOT live',
      h.sessions + ' session(s)',
    ];
    if (h.listener_connected !== null) facts.push('relay-listener ' + (h.listener_connected ? 'connected' : 'disconnected'));
    box.appendChild(el('p', facts.join(' · '), { class: 'summary' }));
    const table = el('table', null, { testid: 'host-slots' });
    table.appendChild(el('thead')).appendChild(row([['Dongle'], ['AppSlot'], ['Name'], ['Limit', 'num'], ['In use', 'num']]));
    const body = table.appendChild(el('tbody'));
    for (const s of h.slots) {
      body.appendChild(row([[s.dongle + (s.present ? '' : ' (absent)')], [s.slot], [s.name], [s.limit, 'num'], [s.taken, 'num', 'taken']],
        { testid: 'host-slot', slot: s.slot }));
    }
    box.appendChild(table);
    if (h.usage_error) {
      box.appendChild(el('p', 'Usage history: ' + h.usage_error, { class: 'muted', testid: 'usage-error' }));
    } else if (h.series && h.series.slots.length && typeof uPlot !== 'undefined') {
      box.appendChild(el('h3', 'Seats in use'));
      const div = el('div', null, { class: 'chart', testid: 'host-chart' });
      box.appendChild(div);
      pending.push([div, h.series]);
    }
    return box;
  }

  async function load() {
    if (busy) return;
    const bearer = token.get();
    if (!bearer) {
      $('token-form').hidden = false;
      $('content').hidden = true;
      return;
    }
    busy = true;
    try {
      const from = new Date(Date.now() - PERIODS[period]).toISOString();
      const response = await fetch('api/hosts?from=' + encodeURIComponent(from), {
        headers: { Authorization: 'Bearer ' + bearer }, cache: 'no-store', credentials: 'omit',
      });
      if (response.status === 401) {
        token.clear();
        $('token-form').hidden = false;
        $('content').hidden = true;
        message('The token was refused.', 'error');
        return;
      }
      const view = await response.json();
      for (const u of charts) u.destroy();
      charts = [];
      $('token-form').hidden = true;
      $('content').hidden = false;
      combined(view.combined);
      const pending = [];
      $('hosts').replaceChildren(...view.hosts.map((h) => host(h, pending)));
      for (const [div, series] of pending) chart(div, series);
      const down = view.hosts.filter((h) => !h.reachable).length;
      $('summary').textContent = view.hosts.length + ' host(s)' + (down ? ', ' + down + ' unreachable' : ', all reachable');
      $('last-updated').textContent = 'Updated ' + new Date(view.fetched_at_ms).toLocaleTimeString() + '.';
      message(down ? 'Some hosts could not be read.' : '', down ? 'error' : '');
      document.body.dataset.loaded = String(view.fetched_at_ms);
    } catch (e) {
      message('Cannot read api/hosts: ' + e, 'error');
    } finally {
      busy = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    token.takeFromFragment();
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      token.set($('token-input').value.trim());
      $('token-input').value = '';
      load();
    });
    $('refresh').addEventListener('click', load);
    for (const b of document.querySelectorAll('[data-period]')) {
      b.addEventListener('click', () => {
        period = b.dataset.period;
        for (const o of document.querySelectorAll('[data-period]')) o.setAttribute('aria-pressed', String(o === b));
        load();
      });
    }
    load();
    setInterval(load, REFRESH_MS);
  });
})();
