// The wsjobd dashboard.  Two WebSockets to the page's own origin:
//   /stats/live  the live feed: a "history" message on connect (the last
//                five minutes, one sample a second), then a "tick" a second
//                with the whole /stats object and the newest sample;
//   /jobs        the job console (JSON job protocol), opened on the first
//                submit.
// A ?token= in the page's own URL goes along on both.  Everything the
// server sends is put in the page as text, never as markup.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get('token');
  const query = token ? '?token=' + encodeURIComponent(token) : '';
  const wsBase = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;

  const HISTORY = 300;
  const REPLACED_MS = 15000;   // how long a worker slot's new process stays highlighted
  const LOG_MAX = 200;         // console events kept on screen

  // ---- formatting ---------------------------------------------------------

  const num = (n) => (n === undefined || n === null) ? '–' : Number(n).toLocaleString('en-US');

  function duration(us) {
    if (!us) return '0';
    if (us < 1000) return us + ' µs';
    if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 2 : 1) + ' ms';
    return (us / 1e6).toFixed(2) + ' s';
  }

  function bytes(b) {
    if (!b) return '–';
    if (b < 1024 * 1024) return (b / 1024).toFixed(0) + ' KiB';
    return (b / 1048576).toFixed(1) + ' MiB';
  }

  function uptime(s) {
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24;
    const m = Math.floor(s / 60) % 60, sec = s % 60;
    return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + (d || h || m ? m + 'm ' : '') + sec + 's';
  }

  function setText(id, text) {
    const el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }

  // One row of cells; each cell is text, or [text, className].
  function row(cells) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement(i === 0 ? 'th' : 'td');
      if (i === 0) td.scope = 'row';
      if (Array.isArray(c)) {
        td.textContent = c[0];
        if (c[1]) td.className = c[1];
      } else {
        td.textContent = c;
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function fillBody(id, rows) {
    $(id).replaceChildren(...rows);
  }

  // ---- the live feed ---------------------------------------------------------

  let samples = [];            // [t, submitted, done, failed, busy, cpu, io, reply]
  let fields = ['t', 'submitted', 'done', 'failed', 'busy', 'cpu', 'io', 'reply'];
  const lastPid = new Map();   // worker slot -> pid seen last
  const replacedAt = new Map(); // worker slot -> when its new pid was first seen
  let feedRetry = 1000;

  function feedState(state, text) {
    const el = $('feed-state');
    el.dataset.state = state;
    setText('feed-state', text);
  }

  function connectFeed() {
    feedState('connecting', 'connecting…');
    const ws = new WebSocket(wsBase + '/stats/live' + query);
    ws.onopen = () => { feedRetry = 1000; feedState('live', 'live'); };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.kind === 'history') {
        if (Array.isArray(m.fields)) fields = m.fields;
        samples = (m.samples || []).slice(-HISTORY);
        drawCharts();
      } else if (m.kind === 'tick') {
        addSample(m.sample);
        render(m.stats);
      }
    };
    ws.onclose = () => {
      feedState('lost', 'disconnected; retrying');
      setTimeout(connectFeed, feedRetry);
      feedRetry = Math.min(feedRetry * 2, 10000);
    };
  }

  function addSample(s) {
    if (!Array.isArray(s)) return;
    const last = samples[samples.length - 1];
    if (last && last[0] >= s[0]) return;   // had it from the history already
    samples.push(s);
    if (samples.length > HISTORY) samples.shift();
    drawCharts();
  }

  // ---- charts (SVG, 300 x 100 user units: one unit a second) --------------

  const SVG = 'http://www.w3.org/2000/svg';

  function drawChart(svgId, maxId, series) {
    const svg = $(svgId);
    const newest = samples.length ? samples[samples.length - 1][0] : 0;
    let max = 1;
    for (const s of samples)
      for (const [col] of series) max = Math.max(max, s[col] || 0);
    const nodes = [];
    for (const y of [25, 50, 75]) {
      const l = document.createElementNS(SVG, 'line');
      l.setAttribute('class', 'grid');
      l.setAttribute('x1', '0'); l.setAttribute('x2', '300');
      l.setAttribute('y1', String(y)); l.setAttribute('y2', String(y));
      nodes.push(l);
    }
    for (const [col, cls] of series) {
      const pts = samples.map((s) => {
        const x = HISTORY - (newest - s[0]);
        const y = 99 - (98 * (s[col] || 0)) / max;
        return x.toFixed(1) + ',' + y.toFixed(1);
      });
      const p = document.createElementNS(SVG, 'polyline');
      p.setAttribute('class', cls);
      p.setAttribute('points', pts.join(' '));
      nodes.push(p);
    }
    svg.replaceChildren(...nodes);
    setText(maxId, 'max ' + num(max));
  }

  function drawCharts() {
    const at = (name) => fields.indexOf(name);
    drawChart('chart-jobs', 'chart-jobs-max',
      [[at('done'), 's-done'], [at('failed'), 's-failed'], [at('busy'), 's-busy']]);
    drawChart('chart-queues', 'chart-queues-max',
      [[at('cpu'), 's-cpu'], [at('io'), 's-io'], [at('reply'), 's-reply']]);
  }

  // ---- the figures ----------------------------------------------------------

  function render(st) {
    if (!st) return;
    setText('version', st.version);
    setText('pid', String(st.pid));
    setText('uptime', uptime(st.uptime_s));
    const c = st.connections, j = st.jobs, l = st.loop;
    setText('conn-open', num(c.open));
    setText('conn-accepted', num(c.accepted_total) + ' / ' + num(c.rejected_total));
    setText('jobs-inflight', num(j.in_flight));
    setText('jobs-done', num(j.done_total) + ' / ' + num(j.failed_total));
    setText('jobs-busy', num(j.busy_total));
    setText('loop-lag', duration(l.lag_us_p50) + ' / ' + duration(l.lag_us_p99) + ' / ' + duration(l.lag_us_max));
    setText('workers-restarted', num(st.workers_restarted_total));
    setText('viewers', num(st.dashboard ? st.dashboard.viewers : 0));
    renderQueues(st.queues);
    renderTypes(j.by_type);
    renderWorkers(st.workers);
    updateTypeChoices(j.by_type);
  }

  function renderQueues(q) {
    fillBody('queues', ['cpu', 'io', 'reply'].map((name) => {
      const r = q[name];
      const tr = row([name, num(r.depth), num(r.capacity), '', num(r.enqueued_total),
        name === 'reply' ? '–' : num(r.full_total)]);
      tr.dataset.queue = name;
      tr.cells[1].dataset.depth = String(r.depth);
      tr.cells[2].dataset.capacity = String(r.capacity);
      const meter = document.createElement('span');
      meter.className = 'meter';
      meter.title = (r.capacity ? (100 * r.depth / r.capacity).toFixed(1) : '0') + ' % full';
      const bar = document.createElement('span');
      bar.style.width = (r.capacity ? Math.min(100, 100 * r.depth / r.capacity) : 0) + '%';
      meter.appendChild(bar);
      tr.cells[3].appendChild(meter);
      return tr;
    }));
  }

  function errorsText(errors) {
    const parts = Object.keys(errors || {}).sort().map((k) => k + ' ' + num(errors[k]));
    return parts.length ? parts.join(', ') : '0';
  }

  function renderTypes(byType) {
    fillBody('types', Object.keys(byType).map((name) => {
      const t = byType[name];
      const errs = errorsText(t.errors);
      const tr = row([name, num(t.submitted), num(t.done),
        [errs, errs === '0' ? 'text' : 'text errors'], num(t.running),
        duration(t.run_us_p50), duration(t.run_us_p99)]);
      tr.dataset.type = name;
      tr.cells[0].title = (t.class || '?') + ' job type';
      return tr;
    }));
  }

  function renderWorkers(workers) {
    const now = Date.now();
    fillBody('workers', workers.map((w, i) => {
      const slot = i + 1;
      const before = lastPid.get(slot);
      if (w.pid && before !== undefined && before !== w.pid) replacedAt.set(slot, now);
      if (w.pid) lastPid.set(slot, w.pid);
      const fresh = replacedAt.has(slot) && now - replacedAt.get(slot) < REPLACED_MS;
      const who = w.pid ? String(w.pid) + (w.tid ? ' / ' + w.tid : '') : '(starting)';
      const busy = w.state === 'busy';
      const tr = row(['#' + slot, who, [w.class, 'text'], [w.state, 'text state-' + w.state],
        [busy ? w.job_type : '–', 'text'], busy ? duration(w.job_runtime_ms * 1000) : '–',
        num(w.jobs_done), bytes(w.rss_bytes), num(w.restarts)]);
      tr.dataset.slot = String(slot);
      tr.dataset.pid = String(w.pid);
      tr.dataset.class = w.class;
      if (fresh) {
        tr.className = 'replaced';
        const b = document.createElement('span');
        b.className = 'badge';
        b.textContent = 'new';
        tr.cells[1].appendChild(b);
      }
      return tr;
    }));
  }

  // ---- the job console ------------------------------------------------------

  const EXAMPLES = {
    echo: 'hello, wsjobd',
    sha256: '{"data": "x", "rounds": 200000}',
    modsum: '{"n": 7, "iterations": 300000000}',
    sleep: '{"ms": 2000}',
    frames: '{"count": 0, "width": 320, "height": 240, "interval_ms": 100}',
    fetch: '{"url": "http://' + location.host + '/healthz", "max_bytes": 65536}',
  };

  let jobsWs = null;
  let jobsReady = null;        // a promise of the open socket
  let seq = 0;
  let current = null;          // {id, type, chunks, frameUrl}
  let knownTypes = '';

  function updateTypeChoices(byType) {
    const names = Object.keys(byType).sort();
    if (names.join(',') === knownTypes) return;
    knownTypes = names.join(',');
    const sel = $('job-type');
    const keep = sel.value;
    sel.replaceChildren(...names.map((n) => {
      const o = document.createElement('option');
      o.value = n;
      o.textContent = n + ' (' + byType[n].class + ')';
      return o;
    }));
    sel.value = names.includes(keep) ? keep : (names.includes('sha256') ? 'sha256' : names[0]);
    if (!keep) exampleFor(sel.value);
  }

  function exampleFor(type) {
    $('job-input').value = EXAMPLES[type] !== undefined ? EXAMPLES[type] : '';
  }

  function openJobs() {
    if (jobsReady) return jobsReady;
    jobsReady = new Promise((resolve, reject) => {
      const ws = new WebSocket(wsBase + '/jobs' + query);
      ws.onopen = () => { jobsWs = ws; resolve(ws); };
      ws.onmessage = (ev) => {
        let m;
        try { m = JSON.parse(ev.data); } catch (e) { return; }
        onJobEvent(m);
      };
      ws.onclose = () => {
        jobsWs = null;
        jobsReady = null;
        reject(new Error('the /jobs connection closed'));
        if (current) finish({ event: 'error', code: 'disconnected', message: 'the connection to /jobs closed' });
      };
    });
    return jobsReady;
  }

  function logLine(text, cls) {
    const log = $('job-log');
    const li = document.createElement('li');
    li.textContent = text;
    if (cls) li.className = cls;
    log.appendChild(li);
    while (log.childElementCount > LOG_MAX) log.firstElementChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  function short(s, n) {
    return s.length > n ? s.slice(0, n) + '… (' + s.length + ' characters)' : s;
  }

  function jobState(text, event, code) {
    const el = $('job-state');
    el.textContent = text;
    el.dataset.event = event || '';
    el.dataset.code = code || '';
  }

  function isSvg(s) {
    return typeof s === 'string' && /^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/.test(s);
  }

  function showFrame(svgText, n) {
    const url = URL.createObjectURL(new Blob([svgText], { type: 'image/svg+xml' }));
    const img = $('job-frame-img');
    const old = current.frameUrl;
    img.onload = () => { if (old) URL.revokeObjectURL(old); };
    img.src = url;
    current.frameUrl = url;
    $('job-frame').hidden = false;
    $('job-frame').dataset.frames = String(n);
    setText('job-frame-caption', 'frame ' + n + ' (' + num(svgText.length) + ' bytes)');
  }

  function onJobEvent(m) {
    if (!current || m.id !== current.id) {
      if (!m.id && m.event === 'error') logLine('error ' + m.code + ': ' + m.message, 'errors');
      return;
    }
    const out = m.output !== undefined ? m.output : (m.output_b64 !== undefined ? '(base64) ' + m.output_b64 : undefined);
    if (m.event === 'progress') {
      const p = $('job-progress');
      p.max = m.total || 1;
      p.value = m.done;
      p.hidden = false;
      $('job-progress-label').hidden = false;
      jobState('running: ' + num(m.done) + ' of ' + num(m.total));
    } else if (m.event === 'chunk') {
      current.chunks++;
      if (isSvg(m.output)) {
        showFrame(m.output, current.chunks);
        if (current.chunks % 10 === 1) logLine('chunk ' + m.seq + ': SVG frame, ' + num(m.output.length) + ' bytes');
      } else {
        logLine('chunk ' + m.seq + ': ' + short(out || '', 400));
      }
      jobState('running: ' + num(current.chunks) + ' chunks');
    } else if (m.event === 'done' || m.event === 'error') {
      finish(m, out);
    }
  }

  function finish(m, out) {
    if (m.event === 'done') {
      const p = $('job-progress');
      if (!p.hidden) p.value = p.max;
      if (out !== undefined) logLine('output: ' + short(out, 4000));
      logLine('done in ' + duration(m.run_us) + ' (queued ' + duration(m.queued_us) + ')', 'final');
      jobState('done: ' + current.type + ' in ' + duration(m.run_us) +
        (current.chunks ? ', ' + num(current.chunks) + ' chunks' : ''), 'done');
    } else {
      logLine('error ' + m.code + ': ' + m.message, 'errors final');
      jobState('error: ' + m.code + ' (' + m.message + ')', 'error', m.code);
    }
    current = null;
    $('job-submit').disabled = false;
    const cancel = $('job-cancel');
    cancel.disabled = true;
    cancel.textContent = 'Cancel';
  }

  function readInput(text) {
    const t = text.trim();
    if (t === '') return '';
    try { return JSON.parse(t); } catch (e) { return text; }
  }

  async function submit(ev) {
    ev.preventDefault();
    if (current) return;
    const type = $('job-type').value;
    if (!type) return;
    const msg = { op: 'submit', id: 'console-' + (++seq), type: type, input: readInput($('job-input').value) };
    const tmo = parseInt($('job-timeout').value, 10);
    if (tmo > 0) msg.timeout_ms = tmo;
    current = { id: msg.id, type: type, chunks: 0, frameUrl: null };
    $('job-log').replaceChildren();
    $('job-frame').hidden = true;
    const p = $('job-progress');
    p.hidden = true;
    p.value = 0;
    $('job-progress-label').hidden = true;
    $('job-submit').disabled = true;
    const cancel = $('job-cancel');
    cancel.disabled = false;
    cancel.textContent = type === 'frames' ? 'Stop' : 'Cancel';
    jobState('submitting ' + type + '…');
    try {
      const ws = await openJobs();
      ws.send(JSON.stringify(msg));
      jobState('submitted ' + type + ' as ' + msg.id);
    } catch (e) {
      if (current) finish({ event: 'error', code: 'disconnected', message: e.message });
    }
  }

  function cancel() {
    if (!current || !jobsWs) return;
    jobsWs.send(JSON.stringify({ op: 'cancel', id: current.id }));
    jobState('cancelling ' + current.id + '…');
  }

  $('job-form').addEventListener('submit', submit);
  $('job-cancel').addEventListener('click', cancel);
  $('job-type').addEventListener('change', (e) => exampleFor(e.target.value));

  connectFeed();
})();
