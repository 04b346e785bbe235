// Drives the dashboard in Debian's Chromium (never a downloaded browser)
// and prints one JSON object of what it saw; tests/test_dashboard.py runs
// it against a real daemon and asserts on that object.
//
//   node dashboard.mjs '{"url":"http://127.0.0.1:PORT/", "steps":["load", ...]}'
//
// steps, run in order (each adds its findings under its name):
//   load       the page goes live; worker pids and ring capacities shown
//   echo       an echo job from the console (submitted from the keyboard)
//   frames     a frames stream plays, then the Stop button cancels it
//   kill       SIGKILL the first CPU worker; how long until the page shows
//              its replacement
//   layout     phone width and dark mode
//   screenshot the page into opts.screenshot (full page), with a frames
//              stream playing in the console
// Always: every request and WebSocket URL, console errors, page errors.
import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const CHROMIUM = opts.chromium || '/usr/bin/chromium';
const out = { requests: [], websockets: [], console_errors: [], page_errors: [] };

function statsUrl() {
  const u = new URL(opts.url);
  u.pathname = '/stats';
  return u.toString();
}

async function stats() {
  const r = await fetch(statsUrl());
  if (r.status !== 200) throw new Error('/stats answered ' + r.status);
  return r.json();
}

async function domWorkers(page) {
  return page.$$eval('#workers tr', (rows) => rows.map((r) => ({
    slot: Number(r.dataset.slot), pid: Number(r.dataset.pid), cls: r.dataset.class,
    replaced: r.classList.contains('replaced'),
  })));
}

const steps = {
  async load(page) {
    await page.goto(opts.url);
    await page.waitForSelector('#feed-state[data-state="live"]', { timeout: 15000 });
    await page.waitForSelector('#workers tr', { timeout: 15000 });
    // Two ticks later the figures are a second old at most.
    await page.waitForTimeout(2200);
    const st = await stats();
    const capacity = await page.$$eval('#queues tr', (rows) =>
      Object.fromEntries(rows.map((r) => [r.dataset.queue, Number(r.cells[2].dataset.capacity)])));
    return {
      workers: await domWorkers(page),
      capacity,
      stats_workers: st.workers.map((w) => ({ pid: w.pid, cls: w.class })),
      stats_capacity: Object.fromEntries(['cpu', 'io', 'reply'].map((q) => [q, st.queues[q].capacity])),
      types: await page.$$eval('#job-type option', (os) => os.map((o) => o.value)),
      feed_state: await page.textContent('#feed-state'),
    };
  },

  async echo(page) {
    await page.selectOption('#job-type', 'echo');
    await page.fill('#job-input', 'hello from the dashboard');
    await page.focus('#job-submit');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#job-state[data-event="done"], #job-state[data-event="error"]',
      { timeout: 15000 });
    return {
      state: await page.textContent('#job-state'),
      event: await page.getAttribute('#job-state', 'data-event'),
      log: await page.$$eval('#job-log li', (ls) => ls.map((l) => l.textContent)),
    };
  },

  async frames(page) {
    await page.selectOption('#job-type', 'frames');
    await page.fill('#job-input', '{"count": 0, "width": 160, "height": 120, "interval_ms": 50}');
    await page.click('#job-submit');
    await page.waitForFunction(() => Number(document.getElementById('job-frame').dataset.frames || 0) >= 5,
      null, { timeout: 20000 });
    const src = await page.getAttribute('#job-frame-img', 'src');
    const shown = await page.$eval('#job-frame-img', (i) => i.complete && i.naturalWidth > 0);
    const button = (await page.textContent('#job-cancel')).trim();
    const before = Number(await page.getAttribute('#job-frame', 'data-frames'));
    await page.click('#job-cancel');
    await page.waitForSelector('#job-state[data-event="error"], #job-state[data-event="done"]',
      { timeout: 15000 });
    const after = Number(await page.getAttribute('#job-frame', 'data-frames'));
    await page.waitForTimeout(500);
    return {
      frame_src: src, frame_shown: shown, button, frames_before_stop: before,
      frames_after_stop: after,
      frames_later: Number(await page.getAttribute('#job-frame', 'data-frames')),
      event: await page.getAttribute('#job-state', 'data-event'),
      code: await page.getAttribute('#job-state', 'data-code'),
    };
  },

  async kill(page) {
    const st = await stats();
    const slot = st.workers.findIndex((w) => w.class === 'cpu' && w.pid) + 1;
    const victim = st.workers[slot - 1].pid;
    await page.waitForSelector(`#workers tr[data-slot="${slot}"][data-pid="${victim}"]`, { timeout: 5000 });
    const t0 = Date.now();
    process.kill(victim, 'SIGKILL');
    const sel = `#workers tr[data-slot="${slot}"].replaced:not([data-pid="${victim}"]):not([data-pid="0"])`;
    let seen_ms = null;
    try {
      await page.waitForSelector(sel, { timeout: 10000 });
      seen_ms = Date.now() - t0;
    } catch (e) { /* reported as null */ }
    const row = (await domWorkers(page)).find((w) => w.slot === slot);
    const after = await stats();
    return {
      slot, victim, seen_ms, shown_pid: row.pid, replaced: row.replaced,
      stats_pid: after.workers[slot - 1].pid,
      restarts_shown: Number(await page.$eval(`#workers tr[data-slot="${slot}"]`,
        (r) => r.cells[8].textContent.replace(/,/g, ''))),
      stats_restarts: after.workers[slot - 1].restarts,
    };
  },

  async layout(page) {
    await page.setViewportSize({ width: 375, height: 800 });
    await page.waitForTimeout(300);
    const phone = await page.evaluate(() => ({
      scroll_width: document.documentElement.scrollWidth, client_width: document.documentElement.clientWidth,
    }));
    const bg = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await page.emulateMedia({ colorScheme: 'light' });
    const light = await bg();
    await page.emulateMedia({ colorScheme: 'dark' });
    const dark = await bg();
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 900 });
    return { phone, light_bg: light, dark_bg: dark };
  },

  async screenshot(page) {
    await page.setViewportSize({ width: 1280, height: 900 });
    if (!page.url().startsWith('http')) await steps.load(page);
    await page.selectOption('#job-type', 'frames');
    await page.fill('#job-input', '{"count": 0, "width": 320, "height": 200, "interval_ms": 200}');
    await page.click('#job-submit');
    await page.waitForTimeout(opts.settle_ms || 3000);
    await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { path: opts.screenshot };
  },
};

let browser;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // A container may forbid Chromium's sandbox; the page is our own.
    args: ['--no-sandbox', '--headless=new'],
    timeout: 90000,
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('request', (r) => out.requests.push(r.url()));
  page.on('websocket', (ws) => out.websockets.push(ws.url()));
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
  page.on('pageerror', (e) => out.page_errors.push(String(e)));
  for (const name of opts.steps) {
    const t0 = Date.now();
    try {
      out[name] = await steps[name](page);
    } catch (e) {
      out[name] = { failed: String(e && e.stack || e) };
    }
    out[name].step_ms = Date.now() - t0;
  }
} catch (e) {
  out.launch_error = String(e && e.stack || e);
} finally {
  if (browser) await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
