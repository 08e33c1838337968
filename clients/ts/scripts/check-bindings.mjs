// Fails when src/declarations/ and src/declarations-directory/ (generated from backend.did
// and directory.did by @icp-sdk/bindgen) are not what `npm run bindgen` makes from the
// .did files checked in.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const [did, dir] of [['../../backend.did', 'src/declarations'], ['../../crates/directory/directory.did', 'src/declarations-directory']]) {
  check(did, dir);
}

function check(did, dir) {
const out = mkdtempSync(join(tmpdir(), 'keepsake-bindgen-'));
try {
  execFileSync(
    join(root, 'node_modules/.bin/icp-bindgen'),
    ['--did-file', join(root, did), '--out-dir', out, '--actor-disabled', '--declarations-typescript', '--declarations-flat', '--force'],
    { stdio: 'pipe' },
  );
  const committed = join(root, dir);
  const files = readdirSync(out).sort();
  const drift = files.filter((f) => {
    try {
      return readFileSync(join(out, f), 'utf8') !== readFileSync(join(committed, f), 'utf8');
    } catch {
      return true;
    }
  });
  if (drift.length || readdirSync(committed).sort().join() !== files.join()) {
    console.error(`bindings drifted from ${did}: ${drift.join(', ') || 'file list'}; run \`npm run bindgen\` in clients/ts`);
    process.exit(1);
  }
  console.log(`bindings match ${did} (${files.join(', ')})`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
}
