// The license server's status page: reads api/status every few seconds with the bearer token
// and renders dongles, AppSlots, sessions, logins and the relay-listener; Disconnect and Logout
// post the admin actions. No framework, no external resources (the page's CSP forbids them).
// The usage charts are charts.js's: it uses this script's api() (window.statusPage) and draws
// when told the status is shown (the 'status-shown' event).
'use strict';

(() => {
  const REFRESH_MS = 3000;
  const token = window.pageToken('dongle-relay-admin-token');
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let busy = false;

  async function api(method, path, body) {
    const headers = {};
    const bearer = token.get();
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    return { status: response.status, data };
  }

  function message(text, kind) {
    const el = $('message');
    el.textContent = text;
    el.className = 'message' + (kind ? ' ' + kind : '');
  }

  function time(ms) {
    return ms ? new Date(ms).toLocaleString() : '';
  }

  function ago(ms, now) {
    if (!ms) return '';
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 120) return s + ' s ago';
    if (s < 7200) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }

  function row(testid, data) {
    const tr = document.createElement('tr');
    tr.dataset.testid = testid;
    for (const [key, value] of Object.entries(data || {})) tr.dataset[key] = value;
    return tr;
  }

  function cell(tr, text, testid, cls) {
    const td = document.createElement('td');
    td.textContent = text === null || text === undefined ? '' : String(text);
    if (testid) td.dataset.testid = testid;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function action(tr, label, testid, run) {
    const td = document.createElement('td');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'danger';
    b.textContent = label;
    b.dataset.testid = testid;
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await run();
      } finally {
        b.disabled = false;
      }
    });
    td.appendChild(b);
    tr.appendChild(td);
  }

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren(...rows);
    if (rows.length === 0) {
      const tr = row('empty-row');
      const td = cell(tr, emptyText, null, 'empty');
      td.colSpan = columns;
      tbody.appendChild(tr);
    }
  }

  function client(session) {
    return session ? session.client_addr : '';
  }

  function render(s) {
    const now = s.taken_at_ms;
    const sessions = new Map(s.sessions.map((x) => [x.id, x]));
    const dongleName = new Map(s.dongles.map((d) => [d.key, d.name]));

    fill($('dongles'), s.dongles.map((d) => {
      const tr = row('dongle-row', { dongleKey: d.key });
      cell(tr, d.number === null ? '–' : d.number);
      cell(tr, d.name, 'dongle-name');
      cell(tr, d.serial === null ? 'unknown' : d.serial, 'dongle-serial');
      cell(tr, d.kind, 'dongle-kind');
      cell(tr, d.model);
      const state = d.presence.state + (d.presence.detail ? ': ' + d.presence.detail : '');
      cell(tr, state, 'dongle-state', d.presence.state === 'present' ? 'state-ok' : 'state-bad');
      return tr;
    }), 6, 'No dongle.');

    const slots = [];
    for (const d of s.dongles) {
      for (const slot of d.slots) {
        const tr = row('appslot-row', { dongleKey: d.key, slot: slot.slot });
        cell(tr, d.name);
        cell(tr, slot.slot);
        cell(tr, slot.name, 'appslot-name');
        cell(tr, slot.limit, 'appslot-limit', 'num');
        cell(tr, slot.taken, 'appslot-taken', 'num' + (slot.taken >= slot.limit && slot.limit > 0 ? ' full' : ''));
        cell(tr, Math.max(0, slot.limit - slot.taken), 'appslot-free', 'num');
        cell(tr, slot.peak, 'appslot-peak', 'num');
        slots.push(tr);
      }
    }
    fill($('appslots'), slots, 7, 'No AppSlot.');

    const loginsOf = new Map();
    for (const l of s.logins) {
      if (!loginsOf.has(l.session)) loginsOf.set(l.session, []);
      loginsOf.get(l.session).push(l.dongle + ' ' + l.slot_name);
    }
    fill($('sessions'), s.sessions.map((x) => {
      const tr = row('session-row', { sessionId: x.id });
      cell(tr, x.id, 'session-id', 'mono');
      cell(tr, x.client_addr, 'session-client');
      cell(tr, x.site || '', 'session-site');
      cell(tr, x.client_name, 'session-name');
      cell(tr, time(x.started_ms), 'session-started');
      cell(tr, ago(x.last_access_ms, now), 'session-last-access');
      cell(tr, (loginsOf.get(x.id) || []).join(', '), 'session-logins');
      action(tr, 'Disconnect', 'disconnect-button', () => disconnect(x));
      return tr;
    }), 8, 'No session.');

    fill($('logins'), s.logins.map((l) => {
      const tr = row('login-row', { sessionId: l.session, dongleKey: l.dongle_key, slot: l.slot });
      cell(tr, l.slot_name, 'login-appslot');
      cell(tr, l.dongle || dongleName.get(l.dongle_key), 'login-dongle');
      cell(tr, l.identity, 'login-identity');
      cell(tr, l.session, 'login-session', 'mono');
      cell(tr, client(sessions.get(l.session)), 'login-client');
      cell(tr, time(l.first_login_ms));
      cell(tr, ago(l.last_refresh_ms, now), 'login-last-refresh');
      action(tr, 'Logout', 'logout-button', () => logout(l));
      return tr;
    }), 8, 'No login.');

    renderListener(s.relay_listener);
    renderServer(s);

    const taken = s.dongles.reduce((n, d) => n + d.slots.reduce((m, x) => m + x.taken, 0), 0);
    $('summary').textContent = s.sessions.length + ' session(s), ' + s.logins.length +
      ' login(s), ' + taken + ' seat(s) taken · licence per ' + s.license_mode +
      ' · login timeout ' + s.login_timeout_secs + ' s · session timeout ' + s.session_timeout_secs + ' s';
  }

  function facts(dl, pairs) {
    const items = [];
    for (const [name, value, testid] of pairs) {
      const dt = document.createElement('dt');
      dt.textContent = name;
      const dd = document.createElement('dd');
      dd.textContent = value === null || value === undefined ? '' : String(value);
      if (testid) dd.dataset.testid = testid;
      items.push(dt, dd);
    }
    dl.replaceChildren(...items);
  }

  function renderListener(l) {
    const box = $('listener');
    if (!l.in_process) {
      const p = document.createElement('p');
      p.className = 'muted';
      p.dataset.testid = 'listener-connected';
      p.textContent = 'Not running in this process (run it here with --relay-listener, or see ' +
        'the relay-listener\u2019s own status).';
      box.replaceChildren(p);
      return;
    }
    const dl = document.createElement('dl');
    dl.className = 'facts';
    facts(dl, [
      ['Relay', l.relay],
      ['Control channel', l.connected ? 'connected' : 'disconnected', 'listener-connected'],
      ['Reconnects', l.reconnects, 'listener-reconnects'],
      ['Streams now', l.active_streams, 'listener-active'],
      ['Streams accepted / rejected / failed', l.accepted + ' / ' + l.rejected + ' / ' + l.failed],
      ['Bytes to / from the relay', l.bytes_to_relay + ' / ' + l.bytes_from_relay],
      ['Last error', l.last_error || '–'],
    ]);
    const connected = dl.querySelector('[data-testid="listener-connected"]');
    if (connected) connected.className = l.connected ? 'state-ok' : 'state-bad';
    box.replaceChildren(dl);
  }

  function renderServer(s) {
    const store = s.store.enabled
      ? s.store.path + ' (' + s.store.opened + '; restored ' + s.store.restored_logins +
        ' login(s); ' + s.store.writes + ' write(s), ' + s.store.errors + ' error(s))'
      : (s.store.error || 'off (StateDb= not set): seats do not survive a restart');
    facts($('server'), [
      ['Version', s.server.version],
      ['License port', s.server.listening],
      ['Public key', s.server.public_key],
      ['Engine', s.server.live ? 'live' : 'STALLED', 'server-live'],
      ['PROXY headers from', s.server.trusted_proxies],
      ['Seat persistence', store, 'server-store'],
    ]);
  }

  function showToken(text) {
    $('content').hidden = true;
    $('token-form').hidden = false;
    message(text, 'error');
    $('token-input').focus();
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      let result;
      try {
        result = await api('GET', 'api/status');
      } catch (e) {
        message('Cannot reach the license server: ' + e, 'error');
        return;
      }
      if (result.status === 401) {
        showToken(token.get()
          ? 'The admin token was refused: enter the right one.'
          : 'Enter the admin token to see the status.');
        return;
      }
      if (result.status !== 200 || !result.data) {
        message('Cannot read the status: ' + ((result.data && result.data.error) || result.status), 'error');
        return;
      }
      $('token-form').hidden = true;
      $('content').hidden = false;
      render(result.data);
      document.dispatchEvent(new CustomEvent('status-shown', { detail: result.data }));
      $('last-updated').textContent = 'Updated ' + new Date(result.data.taken_at_ms).toLocaleTimeString() +
        ', every ' + REFRESH_MS / 1000 + ' s.';
    } finally {
      busy = false;
    }
  }

  async function act(path, body, done) {
    let result;
    try {
      result = await api('POST', path, body);
    } catch (e) {
      message('The action failed: ' + e, 'error');
      return;
    }
    if (result.status === 200) {
      message(done, 'done');
    } else {
      message('The action failed: ' + ((result.data && result.data.error) || result.status), 'error');
    }
    await refresh();
  }

  function disconnect(session) {
    return act('api/sessions/' + encodeURIComponent(session.id) + '/disconnect', undefined,
      'Session ' + session.id + ' (' + session.client_addr + ') disconnected.');
  }

  function logout(login) {
    return act('api/logins/logout', { session: login.session, dongle_key: login.dongle_key, slot: login.slot },
      'Login of session ' + login.session + ' to ' + login.slot_name + ' logged out.');
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, REFRESH_MS);
  }

  window.statusPage = { api };

  document.addEventListener('DOMContentLoaded', () => {
    token.takeFromFragment();
    $('token-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const entered = $('token-input').value.trim();
      if (entered) token.set(entered);
      $('token-input').value = '';
      message('', '');
      refresh();
    });
    $('refresh').addEventListener('click', () => refresh());
    refresh().then(schedule);
  });
})();
