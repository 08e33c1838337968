// The web app (clients/web, served by keepsake serve at its root) in the distribution's
// Chromium, headless: three photos and a video picked in its file input; the gallery
// shows their thumbnails; a reload in the middle of the video's upload, the same file
// picked again, and only the chunks the canister lacks are sent; the video reads back.
//
// Usage: node webapp.mjs CHROMIUM URL PHOTO PHOTO PHOTO VIDEO   (prints one JSON line)
import puppeteer from 'puppeteer-core';

const [chromium, url, ...files] = process.argv.slice(2);
const photos = files.slice(0, 3);
const video = files[3];
const browser = await puppeteer.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const until = async (page, what, f, ms = 120000) => {
  const t = Date.now();
  for (;;) {
    const v = await page.evaluate(f).catch(() => undefined);
    if (v) return v;
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await page.evaluate(() => window.keepsake).catch(() => null))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e}`));
  await page.goto(`${url}/`);
  await until(page, 'the app', () => window.keepsake?.ready);
  const principal = await page.evaluate(() => window.keepsake.principal);

  const t0 = Date.now();
  await (await page.$('#files')).uploadFile(...photos);
  await until(page, 'three photos', () => window.keepsake.results.length === 3 && window.keepsake.gallery === 3);
  const photoSeconds = (Date.now() - t0) / 1000;
  const thumbs = await until(page, 'thumbnails decoded', () => {
    const imgs = [...document.querySelectorAll('#gallery img')];
    return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0) && imgs.map((i) => [i.naturalWidth, i.naturalHeight]);
  });

  // The video: reload part way, pick it again.
  const t1 = Date.now();
  await (await page.$('#files')).uploadFile(video);
  const before = await until(page, 'a quarter of the video', async () => {
    const open = await window.keepsakeOpenSessions();
    const s = open.find((x) => x.chunks > 20);
    return s && s.received >= s.chunks / 4 && s;
  });
  await page.reload();
  await until(page, 'the app after the reload', () => window.keepsake?.ready);
  const samePrincipal = (await page.evaluate(() => window.keepsake.principal)) === principal;
  const held = (await page.evaluate(() => window.keepsakeOpenSessions())).find((s) => s.id === before.id);
  await (await page.$('#files')).uploadFile(video);
  const result = await until(page, 'the video', () => window.keepsake.results.find((r) => r.chunkCount > 20));
  const videoSeconds = (Date.now() - t1) / 1000;
  await until(page, 'four thumbnails', () => window.keepsake.gallery === 4);
  const readBack = await page.evaluate((m) => window.keepsakeReadBack(m), result.memory);
  const errors = await page.evaluate(() => window.keepsake.errors);
  console.log(JSON.stringify({ ok: true, samePrincipal, thumbs, photoSeconds, before, held, result, videoSeconds, readBack, errors }));
} finally {
  await browser.close();
}
