// @keepsake/client in directory mode against `keepsake serve --storage 2`: capsules are
// created through the directory, a capsule's storage canister is found with one query
// and then cached, and uploads go to the storage canister directly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Actor } from '@icp-sdk/core/agent';
import { IDL } from '@icp-sdk/core/candid';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import { Principal } from '@icp-sdk/core/principal';
import { Keepsake, KeepsakeDirectory, KeepsakeError } from '../dist/index.js';
import { startServe, agentFor, bytes } from './serve.mjs';

// A controller of every canister of the network (`serve --controller`): stops and starts them.
const operator = Ed25519KeyIdentity.generate();
let net;

/** The management canister's stop/start for `canister`, called as the operator. */
async function managementFor(canister) {
  const arg = IDL.Record({ canister_id: IDL.Principal });
  return Actor.createActor(
    () => IDL.Service({ stop_canister: IDL.Func([arg], [], []), start_canister: IDL.Func([arg], [], []) }),
    { agent: await agentFor(net.url, operator), canisterId: Principal.managementCanister(), effectiveCanisterId: canister },
  );
}

before(async () => { net = await startServe(['--storage', '2', '--controller', operator.getPrincipal().toText()]); });
after(async () => { await net?.stop(); });

test('directory mode: create through the directory, locate once (cached), upload to the storage canister', async () => {
  assert.equal(net.directory.storage.length, 2);
  const identity = Ed25519KeyIdentity.generate();
  // Count the requests that reach the directory.
  let toDirectory = 0;
  const counting = (input, init) => {
    if (String(input).includes(net.directory.id)) toDirectory++;
    return globalThis.fetch(input, init);
  };
  const store = new Map();
  const cache = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const agent = await agentFor(net.url, identity, counting);
  const dir = new KeepsakeDirectory(agent, net.directory.id, cache);
  const a = await dir.createCapsule('first');
  const b = await dir.createCapsule('second');
  assert.notEqual(a.canister_id.toText(), b.canister_id.toText(), 'two empty storage canisters: one capsule each');
  assert.ok(net.directory.storage.includes(a.canister_id.toText()));
  const mine = await dir.capsules();
  assert.deepEqual(mine.map((l) => l.capsule_id), [a.capsule_id, b.capsule_id]);

  // A fresh client with an empty cache asks the directory once, then never again.
  const store2 = new Map();
  const fresh = new KeepsakeDirectory(agent, net.directory.id, { getItem: (k) => store2.get(k) ?? null, setItem: (k, v) => store2.set(k, v) });
  const before = toDirectory;
  const k = await fresh.keepsakeFor(b.capsule_id);
  assert.equal(k.canisterId.toString(), b.canister_id.toText());
  const afterFirst = toDirectory;
  assert.ok(afterFirst > before, 'the first lookup asks the directory');
  await fresh.locate(b.capsule_id);
  await fresh.keepsakeFor(b.capsule_id);
  assert.equal(toDirectory, afterFirst, 'later lookups come from the cache');

  const data = bytes(3_000_000, 9);
  const r = await k.upload(new Blob([data], { type: 'image/jpeg' }), { capsuleId: b.capsule_id, name: 'p.jpg' });
  const back = await k.download(r.blob.id);
  assert.ok(Buffer.compare(Buffer.from(back), Buffer.from(data)) === 0);
  assert.equal(toDirectory, afterFirst, 'uploads and downloads do not touch the directory');

  // The storage canister refuses capsules made around the directory; unknown capsules are typed refusals.
  await assert.rejects(() => k.capsulesCreate('around'), (e) => e.variant === 'Unauthorized');
  await assert.rejects(() => fresh.locate(987654n), (e) => e instanceof KeepsakeError && e.variant === 'NotFound');
  // Routing tells anyone the storage canister and nothing else; the full location (owner,
  // creation time) only to the owner.
  const stranger = new KeepsakeDirectory(await agentFor(net.url, Ed25519KeyIdentity.generate()), net.directory.id);
  assert.equal((await stranger.locate(b.capsule_id)).toText(), b.canister_id.toText());
  const hidden = await stranger.actor.capsules_locate(b.capsule_id);
  assert.ok('Err' in hidden && 'NotFound' in hidden.Err, JSON.stringify(hidden, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  const own = await dir.actor.capsules_locate(b.capsule_id);
  assert.ok('Ok' in own && own.Ok.owner.toText() === identity.getPrincipal().toText());
  console.log(`# directory mode: ${afterFirst - before} request(s) to the directory for the first lookup, 0 after`);
});

test('a stopped storage canister: calls are retried for retryForMs, so an upload outlives a stop, then give up clearly', async () => {
  const agent = await agentFor(net.url);
  const dir = new KeepsakeDirectory(agent, net.directory.id);
  const loc = await dir.createCapsule('through a stop');
  const k = await dir.keepsakeFor(loc.capsule_id);
  const target = loc.canister_id;
  const management = await managementFor(target);
  await management.stop_canister({ canister_id: target });

  // A short budget gives up with the replica's reject (not a typed refusal).
  const quick = new Keepsake(agent, target, { retryForMs: 1000 });
  const t0 = Date.now();
  await assert.rejects(quick.capsulesList(), (e) => !(e instanceof KeepsakeError) && /stopped/i.test(String(e?.message ?? e)));
  const gaveUp = Date.now() - t0;
  assert.ok(gaveUp < 10_000, `gave up after its 1 s budget, not the default 30 s: ${gaveUp} ms`);

  // The default (30 s) carries an upload across a 10 s stop; six tries, the rule before,
  // gave up after at most ~9 s of backoff.
  const data = bytes(1_500_000, 11);
  const running = k.upload(new Blob([data]), { capsuleId: loc.capsule_id, name: 'during-a-stop.bin' });
  await new Promise((r) => setTimeout(r, 10_000));
  await management.start_canister({ canister_id: target });
  const r = await running;
  const back = await k.download(r.blob.id);
  assert.ok(Buffer.compare(Buffer.from(back), Buffer.from(data)) === 0);

  // The directory stopped: a lookup that is not cached waits for it the same way.
  const directory = Principal.fromText(net.directory.id);
  const directoryManagement = await managementFor(directory);
  await directoryManagement.stop_canister({ canister_id: directory });
  const lookup = new KeepsakeDirectory(agent, directory).locate(loc.capsule_id);
  await new Promise((r) => setTimeout(r, 1500));
  await directoryManagement.start_canister({ canister_id: directory });
  assert.equal((await lookup).toText(), target.toText());
  console.log(`# stopped storage canister: gave up after ${gaveUp} ms with retryForMs 1000; an upload waited out a 10 s stop`);
});
