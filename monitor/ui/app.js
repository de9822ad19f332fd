// etcd-monitor status page. Plain JavaScript, no library, no build step.
//
// Everything the API says reaches the page as text (textContent, text nodes) or as an SVG
// attribute set to a number; nothing is ever parsed as markup, so no answer can inject
// any. The server's Content-Security-Policy allows this file and style.css, nothing else.
'use strict';

(function () {
  const TOKEN_KEY = 'etcd-monitor-token';
  const HISTORY = 120; // metric snapshots the charts show
  const POLL_MS = 5000; // polling period when no event stream is possible
  const RETRY_MS = 3000; // wait before reconnecting a broken event stream

  // The API's paths, in one place.
  const enc = encodeURIComponent;
  const P = {
    health: '/health',
    clusters: '/api/v1/clusters',
    status: (c) => '/api/v1/clusters/' + enc(c) + '/status',
    members: (c) => '/api/v1/clusters/' + enc(c) + '/members',
    leader: (c) => '/api/v1/clusters/' + enc(c) + '/leader',
    current: (c) => '/api/v1/clusters/' + enc(c) + '/metrics/current',
    history: (c) => '/api/v1/clusters/' + enc(c) + '/metrics/history?limit=' + HISTORY,
    alerts: '/api/v1/alerts',
    silences: '/api/v1/silences',
    silence: (id) => '/api/v1/silences/' + enc(id),
    events: '/api/v1/events',
  };

  const S = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    names: [], // cluster names
    health: {}, // name -> /health line
    selected: '',
    status: null, statusErr: '',
    members: null,
    leader: null,
    current: null,
    history: [],
    alerts: [],
    silences: [],
    live: null, // the running live-update mechanism: {stop()}
  };

  const $ = (id) => document.getElementById(id);

  // el builds an element; strings among the children become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class' || k === 'title' || k === 'scope' || k === 'type' || k.startsWith('data-') || k.startsWith('aria-')) e.setAttribute(k, String(v));
      else throw new Error('el: attribute ' + k + ' not allowed');
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  // ---- formatting ----

  // ms reads the duration obj[key + 'Seconds'] (the API's one unit) in milliseconds.
  function ms(obj, key) {
    const v = obj ? obj[key + 'Seconds'] : undefined;
    return typeof v === 'number' ? v * 1000 : null;
  }
  function fmtMs(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + ' s';
    if (v >= 10) return v.toFixed(0) + ' ms';
    if (v >= 1) return v.toFixed(1) + ' ms';
    return v.toFixed(2) + ' ms';
  }
  function fmtBytes(n) {
    if (n === null || n === undefined || !isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n >= 100 ? 0 : 1)) + ' ' + units[i];
  }
  function fmtRate(v) {
    if (v === null || v === undefined || !isFinite(v)) return '–';
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + '/s';
  }
  function fmtTime(t) {
    const d = new Date(t);
    return isNaN(d) ? '–' : d.toLocaleTimeString([], { hour12: false });
  }
  function ago(t) {
    const d = new Date(t);
    if (isNaN(d) || d.getFullYear() < 2000) return '–';
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }
  const noID = (id) => !id || id === '0';
  function memberName(id) {
    if (noID(id)) return 'none';
    const m = (S.members || []).find((x) => x.id === id);
    return m && m.name ? m.name + ' (' + id + ')' : id;
  }

  // ---- the API ----

  class AuthError extends Error {}

  async function api(path, opts) {
    opts = opts || {};
    const headers = { Accept: 'application/json' };
    const token = S.token; // the one this request sends, whatever happens meanwhile
    if (token) headers.Authorization = 'Bearer ' + token;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body, cache: 'no-store', credentials: 'same-origin' });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401) {
      needToken(token ? 'The token was refused: ' + ((data && data.error) || 'invalid') + '.' : '');
      if (S.token === token) forgetToken(); // not one given since
      throw new AuthError('unauthorized');
    }
    if (!resp.ok) {
      const err = new Error((data && data.error) || resp.status + ' ' + resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function banner(msg) {
    const b = $('banner');
    b.textContent = msg || '';
    b.hidden = !msg;
  }

  // ---- sign-in ----

  // epoch counts sign-outs: a refresh that began before one must not sign the page back in.
  let epoch = 0;

  function needToken(why) {
    epoch++;
    stopLive();
    clearTimeout(timer);
    timer = null;
    pending.clear();
    $('main').hidden = true;
    $('login').hidden = false;
    $('login-why').textContent = (why ? why + ' ' : 'This monitor needs an API token. ') +
      'It is kept for this browser tab only (sessionStorage) and sent as a bearer token.';
    setConn('✖ signed out');
    $('token').focus();
  }

  // forgetToken drops the token from the page and the session: one the server refused is
  // not sent again, not even after a reload.
  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    S.token = '';
  }

  function signedIn() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = !S.token;
  }

  // ---- loading ----

  async function loadList() {
    const [names, health, alerts] = await Promise.all([api(P.clusters), api(P.health), api(P.alerts)]);
    S.names = names.clusters || [];
    S.health = {};
    for (const c of health.clusters || []) S.health[c.name] = c;
    S.alerts = alerts.alerts || [];
    const warn = $('warnings');
    clear(warn);
    for (const w of health.warnings || []) warn.append(el('li', { text: '⚠ ' + w }));
    warn.hidden = !(health.warnings || []).length;
    const want = hashCluster();
    if (!S.names.includes(S.selected)) S.selected = S.names.includes(want) ? want : S.names[0] || '';
    renderList();
  }

  // hashCluster returns the cluster the address names (#cluster=NAME), or '' for none or
  // a malformed one: a link must not stop the page from loading.
  function hashCluster() {
    try {
      return decodeURIComponent((location.hash.match(/^#cluster=(.*)$/) || [])[1] || '');
    } catch (e) {
      return '';
    }
  }

  // part loads one part of the selected cluster's state; a 503 (nothing checked yet) is
  // shown, not thrown.
  async function loadHealth() {
    const c = S.selected;
    try {
      const [st, mem, lead] = await Promise.all([api(P.status(c)), api(P.members(c)), api(P.leader(c))]);
      if (c !== S.selected) return;
      S.status = st; S.members = mem.members || []; S.leader = lead; S.statusErr = '';
    } catch (e) {
      if (e instanceof AuthError || e.status !== 503) throw e;
      S.status = null; S.members = null; S.leader = null; S.statusErr = e.message;
    }
    renderCluster();
  }

  async function loadMetrics(full) {
    const c = S.selected;
    try {
      if (full) {
        const h = await api(P.history(c));
        if (c !== S.selected) return;
        S.history = h.snapshots || [];
        S.current = S.history.length ? S.history[S.history.length - 1] : null;
      } else {
        const cur = await api(P.current(c));
        if (c !== S.selected) return;
        S.current = cur.snapshot;
        const last = S.history[S.history.length - 1];
        if (S.current && (!last || new Date(S.current.time) > new Date(last.time))) {
          S.history.push(S.current);
          if (S.history.length > HISTORY) S.history.splice(0, S.history.length - HISTORY);
        }
      }
    } catch (e) {
      if (e instanceof AuthError || e.status !== 503) throw e;
    }
    renderMembers();
    renderCharts();
  }

  async function loadAlerts() {
    const [a, s] = await Promise.all([api(P.alerts), api(P.silences)]);
    S.alerts = a.alerts || [];
    S.silences = s.silences || [];
    renderList();
    renderAlerts();
  }

  // refresh loads the given parts ("list", "health", "metrics", "alerts", "all").
  async function refresh(parts) {
    const all = parts.has('all');
    const my = epoch;
    try {
      const jobs = [];
      if (all) await loadList(); // the others need to know the selected cluster
      else if (parts.has('list') || parts.has('health')) jobs.push(loadList());
      if (all || parts.has('health')) jobs.push(loadHealth());
      if (all || parts.has('metrics')) jobs.push(loadMetrics(all));
      if (all || parts.has('alerts')) jobs.push(loadAlerts());
      await Promise.all(jobs);
      if (my !== epoch) throw new AuthError('signed out meanwhile');
      banner('');
      signedIn();
    } catch (e) {
      if (e instanceof AuthError) throw e;
      if (my === epoch) banner('Cannot load the monitor\'s state: ' + e.message);
    }
  }

  // schedule coalesces the events of one moment into one refresh.
  const pending = new Set();
  let timer = null;
  function schedule(part) {
    pending.add(part);
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const parts = new Set(pending);
      pending.clear();
      refresh(parts).catch(() => {});
    }, 80);
  }

  // ---- live updates ----

  function setConn(text) { $('conn').textContent = text; }

  function onEvent(kind, data) {
    let ev = {};
    try { ev = JSON.parse(data || '{}'); } catch (e) { ev = {}; }
    if (kind === 'resync') { schedule('all'); return; }
    if (ev.cluster && ev.cluster !== S.selected) { schedule('list'); return; }
    if (kind === 'health' || kind === 'metrics' || kind === 'alerts') schedule(kind);
  }

  function stopLive() {
    if (S.live) S.live.stop();
    S.live = null;
  }

  function startLive() {
    stopLive();
    if (!S.token && window.EventSource) S.live = eventSource();
    else if (window.fetch && window.ReadableStream && window.TextDecoderStream && window.AbortController) S.live = fetchStream();
    else S.live = polling();
  }

  // eventSource is the plain way, for a monitor without authentication.
  function eventSource() {
    const es = new EventSource(P.events);
    let stopped = false;
    let retry = null;
    for (const k of ['resync', 'health', 'metrics', 'alerts']) es.addEventListener(k, (e) => onEvent(k, e.data));
    es.onopen = () => setConn('● live');
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) { setConn('◌ reconnecting…'); return; }
      // The server refused the stream (auth switched on, shutting down): find out why
      // through the API, then start again.
      setConn('✖ disconnected, retrying…');
      retry = setTimeout(() => { if (!stopped) refresh(new Set(['all'])).then(startLive, () => {}); }, RETRY_MS);
    };
    return { stop() { stopped = true; clearTimeout(retry); es.close(); } };
  }

  // fetchStream reads the event stream through fetch, which can send the token
  // (EventSource cannot set a header).
  function fetchStream() {
    const ctl = new AbortController();
    let stopped = false;
    let retry = null;
    async function run() {
      const headers = { Accept: 'text/event-stream' };
      const token = S.token;
      if (token) headers.Authorization = 'Bearer ' + token;
      const resp = await fetch(P.events, { headers, cache: 'no-store', signal: ctl.signal });
      if (resp.status === 401) {
        stopped = true;
        needToken('The token was refused.');
        if (S.token === token) forgetToken();
        return;
      }
      if (!resp.ok || !resp.body) throw new Error('event stream: ' + resp.status);
      setConn('● live');
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let kind = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) kind = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (data.length) onEvent(kind, data.join('\n'));
        }
      }
    }
    function loop() {
      run().catch(() => {}).finally(() => {
        if (stopped) return;
        setConn('✖ disconnected, retrying…');
        retry = setTimeout(loop, RETRY_MS);
      });
    }
    loop();
    return { stop() { stopped = true; clearTimeout(retry); ctl.abort(); } };
  }

  function polling() {
    setConn('◌ polling every ' + POLL_MS / 1000 + ' s');
    const id = setInterval(() => { schedule('health'); schedule('metrics'); schedule('alerts'); }, POLL_MS);
    return { stop() { clearInterval(id); } };
  }

  // ---- rendering ----

  function renderList() {
    const ul = $('clusters');
    clear(ul);
    for (const name of S.names) {
      const h = S.health[name] || {};
      const firing = S.alerts.filter((a) => clusterOf(a) === name && a.state === 'firing').length;
      const verdict = !h.checked ? ['…', 'not checked yet', 'muted'] : h.healthy ? ['✔', 'healthy', 'ok'] : ['✖', 'unhealthy', 'bad'];
      const b = el('button', { type: 'button', 'aria-current': name === S.selected ? 'true' : 'false', 'data-cluster': name },
        el('span', { class: verdict[2], 'aria-hidden': 'true', text: verdict[0] }),
        el('strong', { text: name }),
        el('span', { class: verdict[2], text: verdict[1] }),
        firing ? el('span', { class: 'badge bad', text: firing + ' firing' }) : null);
      b.addEventListener('click', () => select(name));
      ul.append(el('li', {}, b));
    }
  }

  function select(name) {
    if (name === S.selected) return;
    S.selected = name;
    S.status = S.members = S.leader = S.current = null;
    S.history = [];
    history.replaceState(null, '', '#cluster=' + enc(name));
    renderList();
    renderCluster();
    refresh(new Set(['all'])).catch(() => {});
  }

  const clusterOf = (a) => a.cluster || (a.labels && a.labels.cluster) || '';

  function renderCluster() {
    $('cluster-title').textContent = 'Cluster ' + S.selected;
    renderSummary();
    renderMembers();
    renderTimeline();
  }

  function renderSummary() {
    const st = S.status;
    const verdict = $('verdict');
    const reasons = $('reasons');
    clear(reasons);
    if (!st) {
      verdict.textContent = '… not checked yet';
      verdict.className = 'verdict muted';
      $('quorum').textContent = '–'; $('survives').textContent = S.statusErr;
      $('leader').textContent = '–'; $('leader-detail').textContent = '';
      $('checked').textContent = '–'; $('check-error').textContent = '';
      return;
    }
    verdict.textContent = st.healthy ? '✔ Healthy' : '✖ Unhealthy';
    verdict.className = 'verdict ' + (st.healthy ? 'ok' : 'bad');
    const q = st.quorum || {};
    const why = [];
    if (!q.hasQuorum) why.push('Quorum lost: writes fail');
    if (noID(st.leader && st.leader.id)) why.push('No leader');
    else if (st.leader && !st.leader.agreed) why.push('Members disagree about the leader');
    if (st.reachable < st.members) why.push((st.members - st.reachable) + ' of ' + st.members + ' members unreachable');
    if (st.splitBrain && st.splitBrain.detected) why.push('Split brain' + (st.splitBrain.reason ? ': ' + st.splitBrain.reason : ''));
    if (st.partition && st.partition.detected) {
      for (const m of st.partition.members || []) why.push('Partitioned: ' + (m.name || m.id) + ' (' + m.reason + (m.lag ? ', ' + m.lag + ' entries behind' : '') + ')');
    }
    for (const a of st.alarms || []) why.push('Alarm ' + a.type + ' on ' + memberName(a.memberID));
    for (const w of why) reasons.append(el('li', { text: w }));

    $('quorum').textContent = (q.healthy ?? '?') + ' / ' + (q.voters ?? '?') + ' voters healthy';
    const survives = !q.hasQuorum ? -1 : typeof q.failuresTolerated === 'number' ? q.failuresTolerated : q.healthy - q.size;
    const sv = $('survives');
    sv.textContent = 'Quorum is ' + q.size + '. ' + (survives < 0 ? '✖ No quorum.'
      : survives === 0 ? '⚠ Survives no further failure.'
        : 'Survives ' + survives + ' more failure' + (survives === 1 ? '' : 's') + '.');
    sv.className = survives <= 0 ? 'bad' : 'muted';

    const l = st.leader || {};
    $('leader').textContent = noID(l.id) ? '✖ none' : '★ ' + (l.name || l.id);
    $('leader-detail').textContent = noID(l.id) ? '' : 'ID ' + l.id + ' · term ' + l.term + (l.agreed ? '' : ' · ⚠ not agreed');

    $('checked').textContent = ago(st.checkedAt);
    $('checked').title = new Date(st.checkedAt).toString();
    const dur = ms(st, 'checkDuration');
    $('check-error').textContent = st.error ? '⚠ latest check failed: ' + st.error + ' (showing the one before)'
      : dur !== null ? 'took ' + fmtMs(dur) : '';
  }

  function memberMetrics(id) {
    return ((S.current && S.current.members) || []).find((m) => m.id === id);
  }

  function renderMembers() {
    const tb = $('members').tBodies[0];
    clear(tb);
    const ms_ = S.members || [];
    const leadID = S.status && S.status.leader ? S.status.leader.id : '';
    const lead = ms_.find((m) => (m.isLeader || m.id === leadID) && m.reachable);
    const alarms = (S.status && S.status.alarms) || [];
    for (const m of [...ms_].sort((a, b) => (a.name || '').localeCompare(b.name || '') || a.id.localeCompare(b.id))) {
      const up = m.reachable;
      const role = m.isLeader || m.id === leadID ? '★ leader' : m.isLearner ? '◇ learner' : 'follower';
      const lag = !up ? null : typeof m.raftIndexLag === 'number' ? m.raftIndexLag
        : lead && typeof m.raftIndex === 'number' ? Math.max(0, lead.raftIndex - m.raftIndex) : null;
      const mm = memberMetrics(m.id);
      const p99 = mm && mm.latency && mm.latency.samples ? ms(mm.latency, 'p99') : null;
      const al = Array.isArray(m.alarms) ? m.alarms : alarms.filter((a) => a.memberID === m.id).map((a) => a.type);
      const inUse = up && m.dbSize ? fmtBytes(m.dbSizeInUse) + ' (' + Math.round(100 * m.dbSizeInUse / m.dbSize) + '%)' : '–';
      const td = (label, content, cls) => el('td', { 'data-label': label, class: cls }, content);
      tb.append(el('tr', { class: up ? 'up' : 'down', 'data-member-id': m.id },
        td('Name', m.name || '(unnamed)'),
        td('ID', el('span', { class: 'mono', text: m.id })),
        td('State', el('span', { class: 'state ' + (up ? 'ok' : 'bad'), title: m.error || '', text: up ? '▲ up' : '▼ down' })),
        td('Role', role),
        td('Version', up ? m.version || '–' : '–'),
        td('DB size', up ? fmtBytes(m.dbSize) : '–', 'num'),
        td('DB in use', inUse, 'num'),
        td('Raft lag', lag === null ? '–' : lag + (lag === 1 ? ' entry' : ' entries'), 'num'),
        td('Probe p99', fmtMs(p99), 'num'),
        td('Alarms', al.length ? el('span', { class: 'bad', text: '⚠ ' + al.join(', ') }) : 'none')));
    }
    if (!ms_.length) tb.append(el('tr', {}, el('td', { class: 'muted', text: S.statusErr || 'no member known yet' })));
  }

  function renderTimeline() {
    const ol = $('timeline');
    clear(ol);
    const changes = ((S.leader && S.leader.changes) || []).slice().reverse();
    for (const c of changes) {
      ol.append(el('li', { title: new Date(c.time).toString() },
        el('span', { class: 'mono', text: fmtTime(c.time) }), ' ',
        memberName(c.from) + ' → ' + memberName(c.to) + ' (term ' + c.term + ', ' + ago(c.time) + ')'));
    }
    $('no-changes').hidden = changes.length > 0;
  }

  function alertMsg(text, bad) {
    const p = $('alert-msg');
    p.textContent = text || '';
    p.hidden = !text;
    p.className = 'msg' + (bad ? ' bad' : '');
  }

  function renderAlerts() {
    const tb = $('alerts').tBodies[0];
    clear(tb);
    const list = S.alerts.filter((a) => clusterOf(a) === S.selected);
    const sev = { critical: ['‼', 'bad'], warning: ['⚠', 'warn'], info: ['ℹ', 'info'] };
    for (const a of list) {
      const st = a.status || {};
      const silenced = (st.silencedBy || []).length > 0;
      const inhibited = (st.inhibitedBy || []).length > 0;
      const state = silenced ? ['🔕 silenced', 'muted'] : inhibited ? ['⊘ inhibited', 'muted']
        : a.state === 'firing' ? ['▲ firing', 'bad'] : ['… pending', 'warn'];
      const s = sev[a.severity] || ['', ''];
      const btn = silenced
        ? el('button', { type: 'button', class: 'unsilence', text: 'Unsilence' })
        : el('button', { type: 'button', class: 'silence', title: 'Silence this alert for one hour (admin token needed)', text: 'Silence 1 h' });
      btn.addEventListener('click', () => (silenced ? unsilence(a, btn) : silence(a, btn)));
      const td = (label, content, cls) => el('td', { 'data-label': label, class: cls }, content);
      tb.append(el('tr', { class: 'alert', 'data-alert': a.name, 'data-fingerprint': a.fingerprint },
        td('State', el('span', { class: 'alert-state ' + state[1], text: state[0] })),
        td('Severity', el('span', { class: s[1], text: (s[0] + ' ' + a.severity).trim() })),
        td('Alert', a.name),
        td('Member', (a.labels && a.labels.member) || '–'),
        td('Summary', el('span', { title: a.description || '', text: a.summary || a.description || '' })),
        td('Since', ago(a.state === 'firing' && a.startsAt ? a.startsAt : a.activeAt), 'num'),
        td('Action', btn)));
    }
    $('no-alerts').hidden = list.length > 0;
    $('alerts').hidden = list.length === 0;

    const ul = $('silences');
    clear(ul);
    const active = S.silences.filter((s) => s.status && s.status.state !== 'expired');
    $('silence-count').textContent = String(active.length);
    for (const s of active) {
      const m = (s.matchers || []).map((x) => x.name + (x.isRegex ? (x.isEqual === false ? '!~' : '=~') : (x.isEqual === false ? '!=' : '=')) + '"' + x.value + '"').join(', ');
      const b = el('button', { type: 'button', text: 'Expire' });
      b.addEventListener('click', () => expire([s.id], b));
      ul.append(el('li', {}, el('span', { class: 'mono', text: '{' + m + '}' }), ' ',
        s.status.state + ' until ' + fmtTime(s.endsAt) + (s.createdBy ? ' · by ' + s.createdBy : '') + (s.comment ? ' · ' + s.comment : '') + ' ', b));
    }
  }

  function writeError(e, what) {
    if (e instanceof AuthError) return;
    if (e.status === 403) alertMsg('✖ ' + what + ' refused: ' + e.message + ' — this needs an admin token.', true);
    else alertMsg('✖ ' + what + ' failed: ' + e.message, true);
  }

  async function silence(a, btn) {
    btn.disabled = true;
    const matchers = Object.entries(a.labels || {}).map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }));
    const endsAt = new Date(Date.now() + 3600 * 1000).toISOString();
    try {
      const s = await api(P.silences, { method: 'POST', body: JSON.stringify({ matchers, endsAt, createdBy: 'status page', comment: 'silenced from the status page' }) });
      alertMsg('🔕 ' + a.name + ' silenced until ' + fmtTime(s.endsAt) + ' (silence ' + s.id + ').');
      await loadAlerts();
    } catch (e) {
      writeError(e, 'Silencing');
    } finally {
      btn.disabled = false;
    }
  }

  function unsilence(a, btn) { return expire((a.status && a.status.silencedBy) || [], btn); }

  async function expire(ids, btn) {
    btn.disabled = true;
    try {
      for (const id of ids) await api(P.silence(id), { method: 'DELETE' });
      alertMsg('Silence ' + ids.join(', ') + ' expired.');
      await loadAlerts();
    } catch (e) {
      writeError(e, 'Unsilencing');
    } finally {
      btn.disabled = false;
    }
  }

  // ---- charts: small SVG line charts ----

  const SVGNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  const sum = (xs) => xs.reduce((a, b) => a + (isFinite(b) ? b : 0), 0);
  const maxOf = (xs) => xs.reduce((a, b) => (isFinite(b) && b > a ? b : a), 0);

  function series() {
    const h = S.history;
    const pts = (f) => h.map((s) => [new Date(s.time).getTime(), f(s)]).filter((p) => p[1] !== null && isFinite(p[1]));
    const mem = (s) => s.members || [];
    const tp = (m) => m.throughput || {};
    return [
      { title: 'Probe latency', fmt: fmtMs, lines: [
        { name: 'p50', pts: pts((s) => (s.latency && s.latency.samples ? ms(s.latency, 'p50') : null)) },
        { name: 'p99', pts: pts((s) => (s.latency && s.latency.samples ? ms(s.latency, 'p99') : null)) }] },
      { title: 'Requests', fmt: fmtRate, lines: [
        { name: 'reads', pts: pts((s) => sum(mem(s).map((m) => tp(m).ranges))) },
        { name: 'writes', pts: pts((s) => sum(mem(s).map((m) => (tp(m).puts || 0) + (tp(m).deletes || 0) + (tp(m).txns || 0)))) }] },
      { title: 'DB size (largest member)', fmt: fmtBytes, lines: [
        { name: 'size', pts: pts((s) => maxOf(mem(s).map((m) => (m.db || {}).size))) },
        { name: 'in use', pts: pts((s) => maxOf(mem(s).map((m) => (m.db || {}).inUse))) }] },
      { title: 'WAL fsync p99 (slowest member)', fmt: fmtMs, lines: [
        { name: 'p99', pts: pts((s) => maxOf(mem(s).map((m) => ms(m.walFsync, 'p99') || 0))) }] },
    ];
  }

  function drawChart(c) {
    const W = 280, H = 100, L = 50, R = 6, T = 8, B = 18;
    const all = c.lines.flatMap((l) => l.pts);
    const box = el('figure', { class: 'chart', 'data-chart': c.title });
    const legend = el('p', { class: 'legend' });
    c.lines.forEach((l, i) => {
      const last = l.pts.length ? l.pts[l.pts.length - 1][1] : null;
      legend.append((i ? '   ' : '') + (i === 0 ? '── ' : '- - ') + l.name + ' ' + (last === null ? '–' : c.fmt(last)));
    });
    box.append(el('h4', { text: c.title }), legend);
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': c.title + ': ' + legend.textContent });
    g.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }), svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }));
    if (all.length < 2) {
      g.append(svg('text', { class: 'lbl', x: L + 8, y: H / 2 }, 'collecting…'));
    } else {
      const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
      const vmax = Math.max(...all.map((p) => p[1])) * 1.1 || 1;
      const x = (t) => L + (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (W - L - R));
      const y = (v) => H - B - (v / vmax) * (H - B - T);
      c.lines.forEach((l, i) => {
        if (!l.pts.length) return;
        g.append(svg('polyline', { class: 's' + i, points: l.pts.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ') }));
      });
      g.append(svg('text', { class: 'lbl', x: L - 4, y: T + 8, 'text-anchor': 'end' }, c.fmt(vmax)),
        svg('text', { class: 'lbl', x: L - 4, y: H - B, 'text-anchor': 'end' }, '0'),
        svg('text', { class: 'lbl', x: L, y: H - 4 }, fmtTime(t0)),
        svg('text', { class: 'lbl', x: W - R, y: H - 4, 'text-anchor': 'end' }, fmtTime(t1)));
    }
    box.append(g);
    return box;
  }

  function renderCharts() {
    const box = $('charts');
    clear(box);
    for (const c of series()) box.append(drawChart(c));
  }

  // ---- start ----

  async function start() {
    try {
      await refresh(new Set(['all']));
      startLive();
    } catch (e) {
      // AuthError: the sign-in form is showing.
    }
  }

  function init() {
    $('login-form').addEventListener('submit', (e) => {
      e.preventDefault();
      S.token = $('token').value.trim();
      $('token').value = '';
      if (S.token) sessionStorage.setItem(TOKEN_KEY, S.token);
      start();
    });
    $('signout').addEventListener('click', () => {
      forgetToken();
      needToken('Token forgotten.');
    });
    window.addEventListener('hashchange', () => {
      const want = hashCluster();
      if (S.names.includes(want)) select(want);
    });
    // Relative times ("12 s ago") age between events.
    setInterval(() => { if (S.status) renderSummary(); }, 5000);
    start();
  }

  init();
})();
