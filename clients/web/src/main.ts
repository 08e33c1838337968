// The keepsake web app: a key kept in this browser (Ed25519, in IndexedDB), uploads with
// progress, cancel and resume (pick the same file again after a reload: only the missing
// chunks are sent), derivatives made here (photos: display, thumbnail, placeholder;
// videos: a poster frame and its thumbnail and placeholder), and a gallery whose images
// and videos come from the canister's HTTP gateway through expiring links.
import { HttpAgent } from '@icp-sdk/core/agent';
import { Ed25519KeyIdentity } from '@icp-sdk/core/identity';
import {
  Keepsake,
  KeepsakeError,
  blobAsset,
  inlineAsset,
  photoDerivatives,
  type AssetInput,
  type Capsule,
  type Memory,
  type UploadResult,
} from '@keepsake/client';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page did, for people (the status line) and for tests (`window.keepsake`). */
const state = {
  ready: false,
  principal: '',
  capsule: 0n,
  results: [] as Array<{ name: string; memory: string; chunksSent: number; chunkCount: number; chunksHeld: number; resumed: boolean; bytesSent: number; seconds: number }>,
  errors: [] as string[],
  gallery: 0,
};
(window as unknown as { keepsake: unknown }).keepsake = state;

async function identity(): Promise<Ed25519KeyIdentity> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const r = indexedDB.open('keepsake', 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const get = () => new Promise<string | undefined>((resolve, reject) => {
    const r = db.transaction('keys').objectStore('keys').get('ed25519');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const kept = await get();
  if (kept) return Ed25519KeyIdentity.fromJSON(kept);
  const fresh = Ed25519KeyIdentity.generate();
  await new Promise<void>((resolve, reject) => {
    const t = db.transaction('keys', 'readwrite');
    t.objectStore('keys').put(JSON.stringify(fresh.toJSON()), 'ed25519');
    t.oncomplete = () => resolve();
    t.onerror = () => reject(t.error);
  });
  return fresh;
}

/** A still of a video (one second in, or a tenth of a shorter one) as a JPEG. */
async function posterFrame(video: Blob): Promise<{ poster: Blob; durationMs: number }> {
  const v = document.createElement('video');
  v.muted = true;
  v.preload = 'auto';
  v.src = URL.createObjectURL(video);
  try {
    await new Promise((resolve, reject) => { v.onloadedmetadata = resolve; v.onerror = () => reject(new Error('this browser cannot decode the video')); });
    v.currentTime = Math.min(1, v.duration / 10);
    await new Promise((resolve) => { v.onseeked = resolve; });
    const c = new OffscreenCanvas(v.videoWidth, v.videoHeight);
    c.getContext('2d')!.drawImage(v, 0, 0);
    return { poster: await c.convertToBlob({ type: 'image/jpeg', quality: 0.85 }), durationMs: Math.round(v.duration * 1000) };
  } finally {
    URL.revokeObjectURL(v.src);
  }
}

function row(name: string) {
  const li = document.createElement('li');
  li.innerHTML = `<span></span><progress max="1" value="0"></progress><small></small><button>cancel</button>`;
  (li.children[0] as HTMLElement).textContent = name;
  $('uploads').append(li);
  const stop = new AbortController();
  (li.children[3] as HTMLButtonElement).onclick = () => stop.abort();
  return {
    signal: stop.signal,
    progress: (p: { bytes: number; total: number; bytesPerSecond: number; etaSeconds: number }) => {
      (li.children[1] as HTMLProgressElement).value = p.bytes / p.total;
      const eta = Number.isFinite(p.etaSeconds) ? `${Math.ceil(p.etaSeconds)} s left` : '';
      (li.children[2] as HTMLElement).textContent = `${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s ${eta}`;
    },
    done: (text: string) => {
      (li.children[2] as HTMLElement).textContent = text;
      (li.children[3] as HTMLButtonElement).disabled = true;
    },
  };
}

async function uploadOne(k: Keepsake, capsule: Capsule, file: File) {
  const r = row(file.name);
  const isVideo = file.type.startsWith('video/');
  try {
    // Derivatives first (here, in the browser), then the original with its progress.
    let stills: { display: Blob; thumbnail: Blob; placeholder: Blob } | undefined;
    let durationMs: number | undefined;
    if (isVideo) {
      const { poster, durationMs: d } = await posterFrame(file);
      stills = await photoDerivatives(poster);
      durationMs = d;
    } else if (file.type === 'image/jpeg' || file.type === 'image/png') {
      stills = await photoDerivatives(file);
    }
    const original: UploadResult = await k.upload(file, { capsuleId: capsule.id, signal: r.signal, onProgress: r.progress });
    const assets: AssetInput[] = [{ ...blobAsset({ Original: null }, original.blob, file.type || 'application/octet-stream'), duration_ms: durationMs === undefined ? [] : [BigInt(durationMs)] }];
    if (stills) {
      const big = await k.upload(stills.display, { capsuleId: capsule.id, name: `${file.name}.${isVideo ? 'poster' : 'display'}.jpg`, mime: 'image/jpeg' });
      const thumb = await k.upload(stills.thumbnail, { capsuleId: capsule.id, name: `${file.name}.thumbnail.jpg`, mime: 'image/jpeg' });
      assets.push(blobAsset(isVideo ? { Poster: null } : { Display: null }, big.blob, 'image/jpeg'));
      assets.push(blobAsset({ Thumbnail: null }, thumb.blob, 'image/jpeg'));
      assets.push(inlineAsset({ Placeholder: null }, new Uint8Array(await stills.placeholder.arrayBuffer()), 'image/jpeg'));
    }
    const memory = await k.memoriesCreate({
      capsule_id: capsule.id,
      meta: { title: file.name, kind: isVideo ? { Video: null } : { Photo: null }, description: '', taken_at_ns: [], tags: [] },
      assets,
      idempotency_key: [`${original.blob.id}`],
    });
    state.results.push({ name: file.name, memory: memory.id.toString(), chunksSent: original.chunksSent, chunkCount: original.chunkCount, chunksHeld: original.chunksHeld, resumed: original.resumed, bytesSent: original.chunksSent * original.blob.chunk_size, seconds: original.seconds });
    r.done(original.resumed ? `resumed: ${original.chunksSent} of ${original.chunkCount} chunks sent` : 'done');
  } catch (e) {
    const text = e instanceof KeepsakeError ? `${e.variant}: ${e.detail}` : (e as Error).name === 'AbortError' ? 'cancelled' : String(e);
    state.errors.push(`${file.name}: ${text}`);
    r.done(text);
  }
}

async function showGallery(k: Keepsake, capsule: Capsule, gateway: string) {
  const memories: Memory[] = await k.memoriesList(capsule.id);
  const g = $('gallery');
  g.replaceChildren();
  for (const m of memories) {
    const has = (kind: string) => m.assets.some((a) => kind in a.kind);
    if (!has('Thumbnail')) continue;
    const thumb = await k.linksCreate(m.id, { Thumbnail: null }, 3600);
    const fig = document.createElement('figure');
    const img = document.createElement('img');
    img.src = gateway + thumb.path;
    img.alt = m.meta.title;
    img.dataset.memory = m.id.toString();
    fig.append(img);
    const video = 'Video' in m.meta.kind;
    if (video) fig.insertAdjacentHTML('beforeend', '<figcaption>▶ video</figcaption>');
    fig.onclick = async () => {
      const big = await k.linksCreate(m.id, video ? { Original: null } : has('Display') ? { Display: null } : { Original: null }, 3600);
      const viewer = $('viewer');
      viewer.innerHTML = video ? `<video controls autoplay src="${gateway + big.path}"></video>` : `<img src="${gateway + big.path}">`;
      viewer.className = 'open';
      viewer.onclick = (e) => { if (e.target === viewer) { viewer.className = ''; viewer.replaceChildren(); } };
    };
    g.append(fig);
  }
  state.gallery = g.querySelectorAll('img').length;
}

async function main() {
  const config = await (await fetch('/keepsake.json')).json();
  const me = await identity();
  const agent = await HttpAgent.create({ host: location.origin, identity: me, shouldFetchRootKey: true });
  const k = new Keepsake(agent, config.canister);
  state.principal = me.getPrincipal().toText();
  $('me').textContent = state.principal;
  const capsule = (await k.capsulesList())[0] ?? (await k.capsulesCreate('My photos'));
  state.capsule = capsule.id;
  const gateway = `${location.protocol}//${config.canister}.localhost:${location.port}`;
  await showGallery(k, capsule, gateway);
  $('status').textContent = 'ready';
  state.ready = true;

  let queue = Promise.resolve();
  const add = (files: Iterable<File>) => {
    for (const f of files) queue = queue.then(() => uploadOne(k, capsule, f)).then(() => showGallery(k, capsule, gateway));
  };
  const input = $<HTMLInputElement>('files');
  input.onchange = () => { add(Array.from(input.files ?? [])); input.value = ''; };
  const drop = $('drop');
  drop.ondragover = (e) => { e.preventDefault(); drop.className = 'over'; };
  drop.ondragleave = () => { drop.className = ''; };
  drop.ondrop = (e) => { e.preventDefault(); drop.className = ''; add(Array.from(e.dataTransfer?.files ?? [])); };
  // For tests and the curious: a memory's original read back (its SHA-256 checked against
  // the digest the upload verified) and the caller's open upload sessions.
  (window as unknown as { keepsakeReadBack: unknown }).keepsakeReadBack = async (memory: string) => {
    const m = await k.memoriesGet(BigInt(memory));
    const a = m.assets.find((x) => 'Original' in x.kind)!;
    const bytes = await k.download(a.blob_id[0]!);
    return { size: bytes.length, sha256: Array.from(a.sha256, (b) => b.toString(16).padStart(2, '0')).join('') };
  };
  (window as unknown as { keepsakeOpenSessions: unknown }).keepsakeOpenSessions = async () =>
    (await k.actor.uploads_list()).map((s) => ({ id: s.id.toString(), name: s.name, received: s.received_chunks, chunks: s.chunk_count }));
}

main().catch((e) => {
  state.errors.push(String(e));
  $('status').textContent = `error: ${e}`;
});
