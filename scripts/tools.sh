# Shared helpers: install project tools on a fresh machine (sourced, not run).
IC_WASM_VERSION="0.11.1"
TOOLS_DIR="${KEEPSAKE_TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown >&2
  fi
}

# Installs an npm-packaged binary into .tools/ if missing (or at another version) and
# prints its path: npm_bin <package> <version> <path of the binary inside the package>.
npm_bin() {
  local bin="$TOOLS_DIR/node_modules/$1/$3"
  if [ ! -x "$bin" ] || ! grep -q "\"version\": \"$2\"" "$TOOLS_DIR/node_modules/$1/package.json" 2>/dev/null; then
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" "$1@$2" >&2
  fi
  echo "$bin"
}

# Prints the path of an ic-wasm binary, installing the npm-packaged one if needed.
ensure_ic_wasm() {
  npm_bin @icp-sdk/ic-wasm-linux-x64 "$IC_WASM_VERSION" bin/ic-wasm
}

# `npm ci` in one of the repo's Node test packages (when its lock changed) and prints its
# directory: npm_ci_dir <path from the repo root>. Node 20 and npm are on every CI machine.
npm_ci_dir() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$1"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --silent --no-audit --no-fund --prefix "$dir" >&2
  fi
  echo "$dir"
}

# The agent-js test package (tests/agent-js: @icp-sdk/core at the version its lock pins).
ensure_agent_js() {
  npm_ci_dir tests/agent-js
}

# The browser test package (tests/browser: puppeteer-core, which drives a system Chromium).
ensure_browser_js() {
  npm_ci_dir tests/browser
}

# The TypeScript client (clients/ts: npm ci, then tsc) and prints its directory.
ensure_ts_client() {
  local dir
  dir="$(npm_ci_dir clients/ts)"
  if [ ! -f "$dir/dist/index.js" ] || [ -n "$(find "$dir/src" -newer "$dir/dist/index.js" -print -quit)" ]; then
    npm run --silent --prefix "$dir" build >&2
  fi
  echo "$dir"
}

# Prints the path of a binary from a Debian package, installing the package with apt-get
# if the binary is missing (as root, or with sudo): apt_bin <binary> <package>.
apt_bin() {
  if ! command -v "$1" >/dev/null 2>&1; then
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >&2
  fi
  command -v "$1"
}

# Chromium for the browser tests ($CHROMIUM_BIN if set, else Debian's package).
ensure_chromium() {
  if [ -n "${CHROMIUM_BIN:-}" ]; then echo "$CHROMIUM_BIN"; else apt_bin chromium chromium; fi
}

# ffmpeg, which the browser test uses to make its video.
ensure_ffmpeg() {
  apt_bin ffmpeg ffmpeg
}

ICP_CLI_VERSION="1.5.0"
# Prints the path of an icp-cli binary (npm-packaged, Linux x64), installing it if needed.
ensure_icp_cli() {
  npm_bin @icp-sdk/icp-cli-linux-x64 "$ICP_CLI_VERSION" bin/icp
}

CARGO_FUZZ_VERSION="0.13.2"

# Prints the path of a cargo-fuzz binary, installing it (from crates.io) if needed.
ensure_cargo_fuzz() {
  local bin="$TOOLS_DIR/bin/cargo-fuzz"
  if [ ! -x "$bin" ]; then
    cargo install --locked --root "$TOOLS_DIR" "cargo-fuzz@$CARGO_FUZZ_VERSION" >&2
  fi
  echo "$bin"
}

# The web app (clients/web: the TS client, npm ci, esbuild) built into clients/web/dist;
# prints that directory (what `keepsake serve --app` serves).
ensure_web_app() {
  ensure_ts_client >/dev/null
  local dir
  dir="$(npm_ci_dir clients/web)"
  if [ ! -f "$dir/dist/app.js" ] || [ -n "$(find "$dir/src" "$dir/index.html" "$dir/../ts/dist" -newer "$dir/dist/app.js" -print -quit)" ]; then
    (cd "$dir" && npm run --silent build >&2)
  fi
  echo "$dir/dist"
}
