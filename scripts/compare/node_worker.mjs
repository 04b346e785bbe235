// node_worker.mjs — the piscina task of node_server.mjs: the sha256 job of
// SPEC §7.  h_1 = sha256(data), h_(i+1) = sha256(hex(h_i)); returns hex(h_R).
import * as crypto from 'node:crypto';

// crypto.hash() (Node 20.12+) is the one-shot form, three times faster here
// than a createHash() object per round; older Nodes get the object.
const sha256Hex = typeof crypto.hash === 'function'
  ? (s) => crypto.hash('sha256', s, 'hex')
  : (s) => crypto.createHash('sha256').update(s, 'utf8').digest('hex');

export default function sha256Chain({ data, rounds }) {
  let h = sha256Hex(data);
  for (let i = 1; i < rounds; i++)
    h = sha256Hex(h);
  return h;
}
