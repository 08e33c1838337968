// Bundles src/main.ts (with @keepsake/client and agent-js) into dist/app.js and copies
// index.html: what `keepsake serve` serves at its root. Prints the bundle's size.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  // @keepsake/client is linked from ../ts: resolve its imports here, so one agent-js is bundled.
  preserveSymlinks: true,
  outfile: 'dist/app.js',
  logLevel: 'warning',
});
copyFileSync('index.html', 'dist/index.html');
console.log(`dist/app.js: ${(statSync('dist/app.js').size / 1024).toFixed(0)} KiB minified`);
