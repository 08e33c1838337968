// Uploads FILE into CAPSULE as the identity from SEED (hex), printing one line per chunk the
// canister acknowledged: the parent kills this process part way.
import { openAsBlob } from 'node:fs';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import { Keepsake } from '../dist/index.js';
import { agentFor } from './serve.mjs';

const [url, canisterId, seedHex, capsule, file] = process.argv.slice(2);
const identity = Ed25519KeyIdentity.generate(Uint8Array.from(Buffer.from(seedHex, 'hex')));
const k = new Keepsake(await agentFor(url, identity), canisterId);
let last = -1;
await k.upload(await openAsBlob(file), {
  capsuleId: BigInt(capsule),
  inFlight: 2,
  onProgress: (p) => {
    if (p.bytes !== last) console.log(JSON.stringify({ bytes: p.bytes }));
    last = p.bytes;
  },
});
console.log(JSON.stringify({ done: true }));
