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

# Installs the agent-js test package (tests/agent-js: @icp-sdk/core at the version its
# package-lock.json pins) and prints its directory. Node 20 and npm are on every CI machine.
ensure_agent_js() {
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/agent-js"
  if [ ! -d "$dir/node_modules/@icp-sdk/core" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    npm ci --silent --no-audit --no-fund --prefix "$dir" >&2
  fi
  echo "$dir"
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
