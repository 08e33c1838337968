// agent-js (@icp-sdk/core) against a local network with its default verification: the
// root key fetched from /api/v2/status, certificates and query signatures checked.
// Uploads a file in parallel chunks, finishes it, reads it back and compares.
// Usage: node upload.mjs URL CANISTER_ID BYTES   (prints one JSON line)
import { HttpAgent, Actor } from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import { createHash, randomBytes } from 'node:crypto';

const [url, canisterId, sizeArg] = process.argv.slice(2);
const size = Number(sizeArg ?? 8_000_000);
const PARALLEL = 4;

// The part of backend.did this script calls (records: the fields it reads).
const idlFactory = ({ IDL }) => {
  const Error = IDL.Variant({
    NotFound: IDL.Text, Unauthorized: IDL.Text, InvalidArgument: IDL.Text, ChecksumMismatch: IDL.Text,
    InProgress: IDL.Text, Expired: IDL.Text, QuotaExceeded: IDL.Text, Conflict: IDL.Text,
  });
  const R = (ok) => IDL.Variant({ Ok: ok, Err: Error });
  const Capsule = IDL.Record({ id: IDL.Nat64, name: IDL.Text });
  const Session = IDL.Record({ id: IDL.Nat64, chunk_count: IDL.Nat32, chunk_size: IDL.Nat32 });
  const BlobMeta = IDL.Record({ id: IDL.Nat64, size: IDL.Nat64, sha256: IDL.Vec(IDL.Nat8), chunk_count: IDL.Nat32 });
  const PutChunkOk = IDL.Record({ received_chunks: IDL.Nat32, stored: IDL.Bool });
  const BeginArgs = IDL.Record({
    sha256: IDL.Opt(IDL.Vec(IDL.Nat8)), capsule_id: IDL.Nat64, mime: IDL.Text, name: IDL.Text,
    pmid: IDL.Opt(IDL.Text), size: IDL.Nat64, chunk_size: IDL.Opt(IDL.Nat32), idempotency_key: IDL.Opt(IDL.Text),
  });
  return IDL.Service({
    capsules_create: IDL.Func([IDL.Record({ name: IDL.Text })], [R(Capsule)], []),
    uploads_begin: IDL.Func([BeginArgs], [R(Session)], []),
    uploads_put_chunk: IDL.Func([IDL.Nat64, IDL.Nat32, IDL.Vec(IDL.Nat8)], [R(PutChunkOk)], []),
    uploads_finish: IDL.Func([IDL.Nat64, IDL.Vec(IDL.Nat8), IDL.Nat64], [R(BlobMeta)], []),
    blobs_read_chunk: IDL.Func([IDL.Nat64, IDL.Nat32], [R(IDL.Vec(IDL.Nat8))], ['query']),
  });
};

const ok = (r, what) => {
  if ('Err' in r) throw new Error(`${what}: ${JSON.stringify(r.Err)}`);
  return r.Ok;
};

async function pool(n, count, f) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < count) await f(next++);
  }));
}

const identity = Ed25519KeyIdentity.generate();
const agent = await HttpAgent.create({ host: url, identity, shouldFetchRootKey: true });
const actor = Actor.createActor(idlFactory, { agent, canisterId });

const data = randomBytes(size);
const sha = createHash('sha256').update(data).digest();
const started = Date.now();
const capsule = ok(await actor.capsules_create({ name: 'agent-js' }), 'capsules_create');
const session = ok(await actor.uploads_begin({
  sha256: [sha], capsule_id: capsule.id, mime: 'application/octet-stream', name: 'agent-js.bin',
  pmid: [], size: BigInt(size), chunk_size: [], idempotency_key: [],
}), 'uploads_begin');
const cs = session.chunk_size;
await pool(PARALLEL, session.chunk_count, async (i) => {
  ok(await actor.uploads_put_chunk(session.id, i, data.subarray(i * cs, Math.min(size, (i + 1) * cs))), `chunk ${i}`);
});
let meta;
for (;;) {
  const r = await actor.uploads_finish(session.id, sha, BigInt(size));
  if ('Err' in r && 'InProgress' in r.Err) continue;
  meta = ok(r, 'uploads_finish');
  break;
}
const uploadMs = Date.now() - started;
const parts = new Array(meta.chunk_count);
await pool(PARALLEL, meta.chunk_count, async (i) => {
  parts[i] = ok(await actor.blobs_read_chunk(meta.id, i), `read chunk ${i}`);
});
const back = Buffer.concat(parts.map((p) => Buffer.from(p)));
const identical = back.length === size && Buffer.compare(back, data) === 0;
console.log(JSON.stringify({
  ok: identical, bytes: size, chunks: session.chunk_count, blob_id: Number(meta.id),
  sha256: sha.toString('hex'), upload_ms: uploadMs, principal: identity.getPrincipal().toText(),
}));
process.exit(identical ? 0 : 1);
