// @keepsake/client against a real `keepsake serve` (agent-js with its default
// verification; nothing of the protocol is mocked).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync, openAsBlob } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import { Keepsake, KeepsakeError, blobAsset, inlineAsset } from '../dist/index.js';
import { startServe, agentFor, bytes } from './serve.mjs';

let net;
before(async () => { net = await startServe(); });
after(async () => { await net?.stop(); });

test('a 50 MB file goes up in parallel chunks and reads back identical', async () => {
  const k = new Keepsake(await agentFor(net.url), net.canisterId);
  const cap = await k.capsulesCreate('ts');
  const data = bytes(50_000_000, 1);
  const seen = [];
  const r = await k.upload(new Blob([data], { type: 'video/mp4' }), { capsuleId: cap.id, name: 'big.mp4', onProgress: (p) => seen.push(p) });
  assert.equal(r.chunkCount, 28);
  assert.equal(r.chunksSent, 28);
  assert.equal(r.resumed, false);
  assert.equal(r.blob.size, 50_000_000n);
  assert.equal(seen.at(-1).bytes, 50_000_000);
  assert.ok(seen.at(-1).bytesPerSecond > 0);
  const back = await k.download(r.blob.id);
  assert.ok(Buffer.compare(Buffer.from(back), Buffer.from(data)) === 0, 'the bytes read back');
  console.log(`# 50 MB through @keepsake/client, 8 chunks in flight: ${r.seconds.toFixed(1)} s, ${(50 / r.seconds).toFixed(1)} MB/s`);
});

test('killed part way, the upload resumes and sends only the missing chunks', async () => {
  const seed = Buffer.alloc(32, 7);
  const identity = Ed25519KeyIdentity.generate(new Uint8Array(seed));
  const k = new Keepsake(await agentFor(net.url, identity), net.canisterId);
  const cap = await k.capsulesCreate('resume');
  const file = join(net.dir, 'video.bin');
  writeFileSync(file, bytes(20_000_000, 2));
  const child = spawn(process.execPath, ['test/upload-child.mjs', net.url, net.canisterId, seed.toString('hex'), String(cap.id), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let acks = 0;
  await new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (JSON.parse(line).bytes > 0 && ++acks === 4) { child.kill('SIGKILL'); resolve(); }
    });
    child.once('exit', resolve);
  });
  await new Promise((resolve) => (child.exitCode !== null || child.signalCode ? resolve() : child.once('exit', resolve)));
  assert.equal(child.signalCode, 'SIGKILL', 'the first upload was killed before it finished');
  const open = (await k.actor.uploads_list()).filter((s) => s.capsule_id === cap.id);
  assert.equal(open.length, 1);
  const before = open[0].received_chunks;
  assert.ok(before >= 3 && before < open[0].chunk_count, `received ${before}`);

  const r = await k.upload(await openAsBlob(file), { capsuleId: cap.id });
  assert.equal(r.sessionId, open[0].id, 'the same session, found by the file\'s fingerprint');
  assert.equal(r.resumed, true);
  assert.equal(r.chunksHeld, before, 'the canister held what uploads_list said');
  assert.equal(r.chunksSent, r.chunkCount - before, `sent ${r.chunksSent} of ${r.chunkCount} with ${before} held`);
  const back = await k.download(r.blob.id);
  assert.ok(Buffer.compare(Buffer.from(back), bytes(20_000_000, 2)) === 0);
  console.log(`# resumed: ${before} of ${r.chunkCount} chunks were held, ${r.chunksSent} sent`);
});

test('typed refusals are not retried; failures in transit are', async () => {
  let calls = 0;
  let failNext = 0;
  const counting = async (url, init) => {
    if (String(url).includes('/call')) {
      calls++;
      if (failNext > 0) { failNext--; throw new TypeError('fetch failed (injected)'); }
    }
    return fetch(url, init);
  };
  const k = new Keepsake(await agentFor(net.url, undefined, counting), net.canisterId);
  await assert.rejects(k.upload(new Blob([bytes(1000, 3)]), { capsuleId: 999n }), (e) => e instanceof KeepsakeError && e.variant === 'NotFound');
  assert.equal(calls, 1, 'one uploads_begin, not retried');

  const cap = await k.capsulesCreate('transit');
  calls = 0;
  failNext = 3;
  const r = await k.upload(new Blob([bytes(5_000_000, 4)]), { capsuleId: cap.id, inFlight: 1 });
  assert.equal(r.chunksSent, 3);
  assert.ok(calls >= 1 + 3 + 1 + 3, `begin, three chunks, finish, and the three failed sends again: ${calls}`);
  assert.ok(Buffer.compare(Buffer.from(await k.download(r.blob.id)), Buffer.from(bytes(5_000_000, 4))) === 0);
});

test('an original and its derivatives become one memory, or none', async () => {
  const k = new Keepsake(await agentFor(net.url), net.canisterId);
  const cap = await k.capsulesCreate('memories');
  const original = (await k.upload(new Blob([bytes(300_000, 5)], { type: 'image/jpeg' }), { capsuleId: cap.id, name: 'photo.jpg' })).blob;
  const meta = { title: 'photo', kind: { Photo: null }, description: '', taken_at_ns: [], tags: [] };
  const m = await k.memoriesCreate({
    capsule_id: cap.id,
    meta,
    assets: [blobAsset({ Original: null }, original, 'image/jpeg'), inlineAsset({ Placeholder: null }, bytes(500, 6), 'image/jpeg')],
    idempotency_key: [],
  });
  assert.equal(m.assets.length, 2);
  await assert.rejects(
    k.memoriesCreate({ capsule_id: cap.id, meta, assets: [blobAsset({ Original: null }, original, 'image/jpeg'), blobAsset({ Display: null }, { ...original, id: 999n }, 'image/jpeg')], idempotency_key: [] }),
    (e) => e instanceof KeepsakeError && e.variant === 'NotFound',
  );
  assert.equal((await k.memoriesList(cap.id)).length, 1, 'the refused memory left nothing');
  const link = await k.linksCreate(m.id, { Placeholder: null }, 600);
  assert.match(link.path, new RegExp(`^/m/${m.id}/placeholder\\?token=`));
});

test('an aborted upload stops and frees its session', async () => {
  const k = new Keepsake(await agentFor(net.url), net.canisterId);
  const cap = await k.capsulesCreate('abort');
  const stop = new AbortController();
  const running = k.upload(new Blob([bytes(20_000_000, 8)]), {
    capsuleId: cap.id,
    inFlight: 2,
    signal: stop.signal,
    onProgress: (p) => { if (p.bytes > 0) stop.abort(); },
  });
  await assert.rejects(running, (e) => e.name === 'AbortError');
  const open = (await k.actor.uploads_list()).filter((s) => s.capsule_id === cap.id);
  assert.equal(open.length, 0, 'uploads_abort was called');
});
