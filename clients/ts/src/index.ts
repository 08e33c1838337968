// @keepsake/client: photos and videos into a keepsake canister with agent-js.
//
// `upload` streams a Blob (a File in a browser, `fs.openAsBlob` in Node) chunk by chunk,
// never holding the whole file: it hashes in file order with an incremental SHA-256,
// keeps N chunks in flight, retries what failed in transit with backoff, never retries
// a typed refusal (the canister's `Err`), and resumes: the session is found again by an
// idempotency key made from the file's fingerprint, and only the chunks the canister
// lacks are sent.
import { Actor, type ActorSubclass, type HttpAgent } from '@icp-sdk/core/agent';
import { Principal } from '@icp-sdk/core/principal';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  idlFactory,
  type _SERVICE,
  type AssetInput,
  type AssetKind,
  type BlobMeta,
  type Capsule,
  type Error as CanisterError,
  type Link,
  type Memory,
  type MemoryCreateArgs,
  type Session,
} from './declarations/backend.did.js';

export type * from './declarations/backend.did.js';
export { idlFactory } from './declarations/backend.did.js';

/** A refusal of the canister (or of a directory): its `Error` variant and message. Never retried. */
export class KeepsakeError extends Error {
  readonly variant: string;
  readonly detail: string;
  constructor(readonly error: CanisterError | Record<string, string>, readonly method: string) {
    const [variant, detail] = Object.entries(error)[0] as [string, string];
    super(`${method}: ${variant}: ${detail}`);
    this.name = 'KeepsakeError';
    this.variant = variant;
    this.detail = detail;
  }
}

type Res<T> = { Ok: T } | { Err: CanisterError };

function ok<T>(r: Res<T>, method: string): T {
  if ('Err' in r) throw new KeepsakeError(r.Err, method);
  return r.Ok;
}

export interface Progress {
  /** Bytes the canister holds for this file (sent now or earlier). */
  bytes: number;
  total: number;
  bytesPerSecond: number;
  etaSeconds: number;
}

export interface UploadOptions {
  capsuleId: bigint;
  mime?: string;
  name?: string;
  /** Chunks in flight (default 8). */
  inFlight?: number;
  /** Bytes per chunk (default: the canister's `default_chunk_size`). */
  chunkSize?: number;
  /** Most attempts per message for failures in transit (default: no bound but `retryForMs`). */
  attempts?: number;
  /** How long a message is retried after failures in transit, in ms (default: the client's). */
  retryForMs?: number;
  /** The session's idempotency key (default: from the file's fingerprint). */
  idempotencyKey?: string;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
}

export interface UploadResult {
  blob: BlobMeta;
  sessionId: bigint;
  /** Chunks sent by this call (a resumed upload sends only the missing ones). */
  chunksSent: number;
  chunkCount: number;
  /** Chunks the canister already held when this call began (counted by the canister). */
  chunksHeld: number;
  /** The canister already held some of the file. */
  resumed: boolean;
  seconds: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(abortError(signal)); }, { once: true });
  });

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('the upload was aborted', 'AbortError');
}

/**
 * A stable key for a file: size, name, modification time and the SHA-256 of its first and
 * last 64 KiB. The same file picked again (after a reload or a crash) gives the same key.
 */
export async function fingerprint(blob: Blob): Promise<string> {
  const edge = 64 * 1024;
  const head = new Uint8Array(await blob.slice(0, edge).arrayBuffer());
  const tail = new Uint8Array(await blob.slice(Math.max(0, blob.size - edge)).arrayBuffer());
  const name = (blob as File).name ?? '';
  const modified = (blob as File).lastModified ?? 0;
  const h = sha256.create();
  h.update(new TextEncoder().encode(`${blob.size}\n${name}\n${modified}\n`));
  h.update(sha256(head));
  h.update(sha256(tail));
  return `ts1-${bytesToHex(h.digest()).slice(0, 40)}`;
}

/** Default of `KeepsakeOptions.retryForMs`: long enough for a canister's stop, upgrade and start on mainnet. */
export const DEFAULT_RETRY_FOR_MS = 30_000;

export interface KeepsakeOptions {
  /**
   * How long a message is retried after failures in transit (network, a canister stopped for
   * an upgrade, a busy replica), in ms; typed refusals are never retried. Default 30 s.
   */
  retryForMs?: number;
}

/**
 * Calls `f` again after failures in transit (not after a typed refusal, which `f` returns
 * or throws as a `KeepsakeError`), with backoff, for `retryForMs` and at most `attempts` tries.
 */
export async function retrying<T>(f: () => Promise<T>, retryForMs: number, attempts = Infinity, signal?: AbortSignal): Promise<T> {
  const start = Date.now();
  for (let i = 1; ; i++) {
    if (signal?.aborted) throw abortError(signal);
    try {
      return await f();
    } catch (e) {
      const wait = Math.min(200 * 2 ** (i - 1), 5000) * (0.5 + Math.random());
      if (e instanceof KeepsakeError || i >= attempts || signal?.aborted || Date.now() - start + wait > retryForMs) throw e;
      await sleep(wait, signal);
    }
  }
}

export class Keepsake {
  readonly actor: ActorSubclass<_SERVICE>;
  readonly retryForMs: number;

  constructor(readonly agent: HttpAgent, readonly canisterId: Principal | string, options: KeepsakeOptions = {}) {
    this.actor = Actor.createActor<_SERVICE>(idlFactory, { agent, canisterId });
    this.retryForMs = options.retryForMs ?? DEFAULT_RETRY_FOR_MS;
  }

  private retry<T>(what: string, f: () => Promise<T>, attempts = Infinity, signal?: AbortSignal, retryForMs = this.retryForMs): Promise<T> {
    return retrying(f, retryForMs, attempts, signal);
  }

  async capsulesCreate(name: string): Promise<Capsule> {
    return ok(await this.retry('capsules_create', () => this.actor.capsules_create({ name })), 'capsules_create');
  }

  async capsulesList(): Promise<Capsule[]> {
    return this.retry('capsules_list', () => this.actor.capsules_list());
  }

  async uploadsStatus(sessionId: bigint): Promise<Session> {
    return ok(await this.retry('uploads_status', () => this.actor.uploads_status(sessionId)), 'uploads_status');
  }

  /** An original and its derivatives (blobs or inline bytes) committed as one memory. */
  async memoriesCreate(args: MemoryCreateArgs): Promise<Memory> {
    return ok(await this.retry('memories_create', () => this.actor.memories_create(args)), 'memories_create');
  }

  async memoriesGet(id: bigint): Promise<Memory> {
    return ok(await this.retry('memories_get', () => this.actor.memories_get(id)), 'memories_get');
  }

  async memoriesList(capsuleId: bigint, cursor?: bigint, limit = 100): Promise<Memory[]> {
    const page = ok(await this.retry('memories_list', () => this.actor.memories_list(capsuleId, cursor === undefined ? [] : [cursor], limit)), 'memories_list');
    return page.memories;
  }

  /** An expiring link to one asset (`ttlSeconds`: 60 s to 30 days), as a path of the canister's HTTP origin. */
  async linksCreate(memoryId: bigint, kind: AssetKind, ttlSeconds: number): Promise<Link> {
    return ok(await this.retry('links_create', () => this.actor.links_create(memoryId, kind, BigInt(ttlSeconds))), 'links_create');
  }

  /** Uploads `source` into a capsule; see the module comment. */
  async upload(source: Blob, opts: UploadOptions): Promise<UploadResult> {
    const t0 = Date.now();
    const { signal } = opts;
    const attempts = opts.attempts ?? Infinity;
    const retryForMs = opts.retryForMs ?? this.retryForMs;
    const inFlight = Math.max(1, opts.inFlight ?? 8);
    if (source.size === 0) throw new RangeError('empty files cannot be uploaded');
    const key = opts.idempotencyKey ?? (await fingerprint(source));
    const name = opts.name ?? (source as File).name ?? 'upload';
    const mime = opts.mime || source.type || 'application/octet-stream';
    const session = ok(
      await this.retry('uploads_begin', () => this.actor.uploads_begin({
        capsule_id: opts.capsuleId,
        size: BigInt(source.size),
        chunk_size: opts.chunkSize ? [opts.chunkSize] : [],
        sha256: [],
        mime,
        name,
        pmid: [key],
        idempotency_key: [key],
      }), attempts, signal, retryForMs),
      'uploads_begin',
    );
    const chunkSize = session.chunk_size;
    const count = session.chunk_count;
    const have = new Set<number>();
    for (const r of session.received) for (let i = r.start; i < r.end; i++) have.add(i);
    const resumed = have.size > 0 || 'Finished' in session.state;
    if ('Finished' in session.state) {
      const blob = ok(await this.retry('blobs_meta', () => this.actor.blobs_meta((session.state as { Finished: { blob_id: bigint } }).Finished.blob_id)), 'blobs_meta');
      return { blob, sessionId: session.id, chunksSent: 0, chunkCount: count, chunksHeld: count, resumed, seconds: (Date.now() - t0) / 1000 };
    }
    const len = (i: number) => Math.min(chunkSize, source.size - i * chunkSize);
    let held = [...have].reduce((n, i) => n + len(i), 0);
    const heldAtStart = held;
    const report = () => {
      const s = Math.max((Date.now() - t0) / 1000, 1e-3);
      const rate = (held - heldAtStart) / s;
      opts.onProgress?.({ bytes: held, total: source.size, bytesPerSecond: rate, etaSeconds: rate > 0 ? (source.size - held) / rate : Infinity });
    };
    report();

    // Hashing runs in file order beside the sends: chunk i is read once, hashed when its
    // turn comes, and sent if the canister lacks it. At most `inFlight` chunks are held.
    const hasher = sha256.create();
    let sent = 0;
    let next = 0;
    let hashedUpTo = 0;
    const ready = new Map<number, Uint8Array>();
    // Read-ahead is bounded: no chunk is taken more than 2 × inFlight past the hash.
    const window = 2 * inFlight;
    let waiting: Array<() => void> = [];
    const hashed = () => { const w = waiting; waiting = []; w.forEach((f) => f()); };
    const aborted = async () => {
      await this.actor.uploads_abort(session.id).catch(() => undefined);
      throw abortError(signal!);
    };
    const worker = async () => {
      while (next < count) {
        if (signal?.aborted) return;
        if (next - hashedUpTo >= window) {
          await new Promise<void>((resolve) => waiting.push(resolve));
          continue;
        }
        const i = next++;
        const bytes = new Uint8Array(await source.slice(i * chunkSize, i * chunkSize + len(i)).arrayBuffer());
        if (!have.has(i)) {
          ok(await this.retry('uploads_put_chunk', () => this.actor.uploads_put_chunk(session.id, i, bytes), attempts, signal, retryForMs), 'uploads_put_chunk');
          sent++;
          held += bytes.length;
          report();
        }
        ready.set(i, bytes);
        while (ready.has(hashedUpTo)) {
          hasher.update(ready.get(hashedUpTo)!);
          ready.delete(hashedUpTo);
          hashedUpTo++;
          hashed();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
    } catch (e) {
      if (signal?.aborted) return aborted();
      throw e;
    }
    if (signal?.aborted) return aborted();
    const digest = hasher.digest();
    // The canister may still be hashing what arrived out of order: finish says InProgress.
    for (let round = 0; ; round++) {
      const r = await this.retry('uploads_finish', () => this.actor.uploads_finish(session.id, digest, BigInt(source.size)), attempts, signal, retryForMs);
      if ('Err' in r && 'InProgress' in r.Err && round < 10_000) {
        await sleep(20, signal);
        continue;
      }
      const blob = ok(r, 'uploads_finish');
      return { blob, sessionId: session.id, chunksSent: sent, chunkCount: count, chunksHeld: have.size, resumed, seconds: (Date.now() - t0) / 1000 };
    }
  }

  /** Reads a blob back whole and checks its SHA-256 against what the upload verified. */
  async download(blobId: bigint): Promise<Uint8Array> {
    const meta = ok(await this.retry('blobs_meta', () => this.actor.blobs_meta(blobId)), 'blobs_meta');
    const out = new Uint8Array(Number(meta.size));
    let at = 0;
    const h = sha256.create();
    for (let i = 0; i < meta.chunk_count; i++) {
      const part = ok(await this.retry('blobs_read_chunk', () => this.actor.blobs_read_chunk(blobId, i)), 'blobs_read_chunk');
      out.set(part, at);
      h.update(part);
      at += part.length;
    }
    const got = h.digest();
    if (at !== out.length || bytesToHex(got) !== bytesToHex(meta.sha256)) {
      throw new Error(`blob ${blobId}: the bytes read back do not hash to the digest the upload verified`);
    }
    return out;
  }
}

/** An asset of a memory from a finished blob. */
export function blobAsset(kind: AssetKind, blob: BlobMeta, mime: string, size?: { width: number; height: number }): AssetInput {
  return {
    kind,
    source: { Blob: blob.id },
    mime,
    width: size ? [size.width] : [],
    height: size ? [size.height] : [],
    duration_ms: [],
  };
}

/** An inline asset (≤ 32 KiB: placeholders). */
export function inlineAsset(kind: AssetKind, bytes: Uint8Array, mime: string): AssetInput {
  return { kind, source: { Inline: bytes }, mime, width: [], height: [], duration_ms: [] };
}

/**
 * Browser only (createImageBitmap + OffscreenCanvas; not exercised by the Node tests):
 * the display (2048 px), thumbnail (512 px) and placeholder (32 px) renditions of a photo
 * as JPEG blobs, for `memoriesCreate` beside the original.
 */
export async function photoDerivatives(photo: Blob): Promise<{ display: Blob; thumbnail: Blob; placeholder: Blob }> {
  const bitmap = await createImageBitmap(photo);
  const scaled = async (longSide: number, quality: number) => {
    const k = Math.min(1, longSide / Math.max(bitmap.width, bitmap.height));
    const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * k)), Math.max(1, Math.round(bitmap.height * k)));
    canvas.getContext('2d')!.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return canvas.convertToBlob({ type: 'image/jpeg', quality });
  };
  return { display: await scaled(2048, 0.85), thumbnail: await scaled(512, 0.8), placeholder: await scaled(32, 0.6) };
}

export { KeepsakeDirectory, type LocationCache, type CapsuleLocation, type StorageInfo } from './directory.js';
