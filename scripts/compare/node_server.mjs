// node_server.mjs — the usual Node.js answer to "WebSocket jobs", for
// scripts/compare.sh to measure wsjobd against: one `ws` server on the main
// thread, CPU work in a `piscina` pool of worker threads.  It speaks the
// subset of wsjobd's protocols that `wsjob bench` uses:
//
//   /run/echo  raw ordered mode (SPEC §6) for echo: every message comes back
//              with its opcode, in order, from the main thread (a thread hop
//              per 64-byte message would only make it slower).
//   /jobs      the JSON job protocol (SPEC §5), op "submit" only, job types
//              sha256 (SPEC §7, computed in the pool by node_worker.mjs) and
//              echo; the reply is {"id":..,"event":"done","output":..} or an
//              "error" event.
//
//   node node_server.mjs --workers N [--port P] --modules DIR
//
// DIR is the --prefix that `npm install ws piscina` was given.  Prints
// "port P" on stdout once it listens (P the kernel's pick when 0).
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    workers: { type: 'string', default: '1' },
    port: { type: 'string', default: '0' },
    modules: { type: 'string', default: '.' },
    backlog: { type: 'string', default: '4096' },
  },
});
const workers = Number(opt.workers);

// The packages live under the build directory, not beside this file, and
// ES modules ignore NODE_PATH: resolve them from there.
const require = createRequire(resolve(opt.modules, 'package.json'));
const { WebSocketServer } = require('ws');
const { Piscina } = require('piscina');

const MAX_ROUNDS = 100000000;

const pool = new Piscina({
  filename: new URL('./node_worker.mjs', import.meta.url).href,
  minThreads: workers,
  maxThreads: workers,
  idleTimeout: 60000,
});

function send(ws, obj) {
  if (ws.readyState === ws.OPEN)
    ws.send(JSON.stringify(obj));
}

function sha256Args(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input) ||
      Object.keys(input).some((k) => k !== 'data' && k !== 'rounds'))
    return 'input must be {"data":S,"rounds":R}';
  if (typeof input.data !== 'string')
    return 'data must be a string';
  if (!Number.isInteger(input.rounds) || input.rounds < 1 || input.rounds > MAX_ROUNDS)
    return `rounds must be 1..${MAX_ROUNDS}`;
  return null;
}

function submit(ws, msg) {
  const id = msg.id;
  if (msg.type === 'echo') {
    const out = typeof msg.input === 'string' ? msg.input : JSON.stringify(msg.input ?? '');
    send(ws, { id, event: 'done', output: out });
    return;
  }
  if (msg.type !== 'sha256') {
    send(ws, { id, event: 'error', code: 'unknown_type', message: `no job type ${msg.type}` });
    return;
  }
  const bad = sha256Args(msg.input);
  if (bad) {
    send(ws, { id, event: 'error', code: 'bad_request', message: bad });
    return;
  }
  pool.run({ data: msg.input.data, rounds: msg.input.rounds }).then(
    (output) => send(ws, { id, event: 'done', output }),
    (err) => send(ws, { id, event: 'error', code: 'handler_error', message: String(err) }));
}

function onJobMessage(ws, data, isBinary) {
  let msg = null;
  try {
    msg = isBinary ? null : JSON.parse(data.toString('utf8'));
  } catch {
    msg = null;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    send(ws, { event: 'error', code: 'bad_request', message: 'not a JSON object' });
    return;
  }
  const idOk = typeof msg.id === 'string' && msg.id.length >= 1 && msg.id.length <= 64;
  if (msg.op !== 'submit' || !idOk) {
    const reply = { event: 'error', code: 'bad_request', message: 'only op submit with an id' };
    if (idOk)
      reply.id = msg.id;
    send(ws, reply);
    return;
  }
  submit(ws, msg);
}

const server = createServer((req, res) => {
  res.writeHead(404).end();
});
// maxPayload as wsjobd's default --max-message; no permessage-deflate (wsjobd
// has none either, and `wsjob bench` does not offer it).
const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20, perMessageDeflate: false });

server.on('upgrade', (req, socket, head) => {
  const path = req.url.split('?')[0];
  if (path !== '/run/echo' && path !== '/jobs') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (path === '/run/echo')
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    else
      ws.on('message', (data, isBinary) => onJobMessage(ws, data, isBinary));
    ws.on('error', () => ws.terminate());
  });
});

function stop() {
  wss.clients.forEach((ws) => ws.terminate());
  server.close();
  pool.destroy().finally(() => process.exit(0));
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen({ host: '127.0.0.1', port: Number(opt.port), backlog: Number(opt.backlog) }, () => {
  process.stdout.write(`port ${server.address().port}\n`);
});
