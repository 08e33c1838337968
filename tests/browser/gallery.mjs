// A real browser against keepsake serve's HTTP gateway: the distribution's Chromium,
// headless, driven by puppeteer-core. A small page loads photos and a video from the
// canister's origin (http://<canister-id>.localhost:<port>), every byte through the
// gateway, and the script checks what a person looking at their photos sees:
// thumbnails and display images decoded with the right pixels, and a video that plays
// from wherever one seeks.
//
// Usage: node gallery.mjs CHROMIUM ORIGIN SPEC_JSON   (prints one JSON line)
// SPEC: { photos: [{ memory, quadrants: [[r,g,b] x4: top-left, top-right, bottom-left,
//         bottom-right] }], video: { memory, seeks: [0.25, 0.5, 0.9] } }
import puppeteer from 'puppeteer-core';

const [chromium, origin, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--autoplay-policy=no-user-gesture-required'],
});
try {
  const page = await browser.newPage();
  const failed = [];
  // A player cancels the range request in flight when it seeks: that is not a failure.
  page.on('requestfailed', (r) => { if (r.failure()?.errorText !== 'net::ERR_ABORTED') failed.push(`${r.url()}: ${r.failure()?.errorText}`); });
  page.on('response', (r) => { if (r.status() >= 400 && r.status() !== 416) failed.push(`${r.url()}: HTTP ${r.status()}`); });

  // The page is the test's (the canister serves no HTML; its responses carry a sandboxing
  // Content-Security-Policy, so a document it served could not be the page anyway). Like a
  // web app on its own origin, it loads every image and the video from the canister's
  // origin through the gateway; images with CORS (the gateway allows any origin), so the
  // canvas can read their pixels.
  const url = (path) => `${origin}${path}`;
  const imgs = spec.photos.flatMap((p, i) => [
    `<img id="t${i}" crossorigin="anonymous" src="${url(`/m/${p.memory}/thumbnail`)}">`,
    `<img id="d${i}" crossorigin="anonymous" src="${url(`/m/${p.memory}/display`)}">`,
  ]);
  const video = `<video id="v" src="${url(`/m/${spec.video.memory}/original`)}" preload="metadata" muted playsinline></video>`;
  await page.setContent(`<!doctype html><title>keepsake</title><body>${imgs.join('')}${video}</body>`);

  const photos = await page.evaluate(async (photos) => {
    const out = [];
    for (let i = 0; i < photos.length; i++) {
      for (const kind of ['t', 'd']) {
        const img = document.getElementById(`${kind}${i}`);
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        const at = (fx, fy) => Array.from(g.getImageData(Math.floor(c.width * fx), Math.floor(c.height * fy), 1, 1).data.slice(0, 3));
        out.push({
          photo: i,
          kind: kind === 't' ? 'thumbnail' : 'display',
          width: img.naturalWidth,
          height: img.naturalHeight,
          quadrants: [at(0.25, 0.25), at(0.75, 0.25), at(0.25, 0.75), at(0.75, 0.75)],
        });
      }
    }
    return out;
  }, spec.photos);

  const playback = await page.evaluate(async (seeks) => {
    const v = document.getElementById('v');
    const once = (name, ms = 30000) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${name} within ${ms} ms (readyState ${v.readyState}, currentTime ${v.currentTime})`)), ms);
      v.addEventListener(name, () => { clearTimeout(timer); resolve(); }, { once: true });
      v.addEventListener('error', () => reject(new Error(`video error ${v.error?.code}: ${v.error?.message}`)), { once: true });
    });
    if (v.readyState < 1) await once('loadedmetadata');
    const duration = v.duration;
    const canPlay = v.canPlayType('video/mp4; codecs="avc1.64001f"');
    const results = [];
    for (const f of seeks) {
      const target = duration * f;
      const t0 = performance.now();
      const seeked = once('seeked');
      v.currentTime = target;
      await seeked;
      const seekedMs = performance.now() - t0;
      // HAVE_CURRENT_DATA: the frame at the new position is decoded and can be shown.
      while (v.readyState < 2) await once('loadeddata', 10000).catch(() => once('canplay', 10000));
      const frameMs = performance.now() - t0;
      results.push({ fraction: f, target, currentTime: v.currentTime, readyState: v.readyState, seekedMs, frameMs });
    }
    // And it plays on from the last seek.
    const before = v.currentTime;
    await v.play();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    v.pause();
    return { duration, canPlay, seeks: results, playedSeconds: v.currentTime - before, width: v.videoWidth, height: v.videoHeight };
  }, spec.video.seeks);

  console.log(JSON.stringify({ ok: true, photos, playback, failed }));
} finally {
  await browser.close();
}
