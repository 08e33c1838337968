# Shared helpers: install project tools on a fresh machine (sourced, not run).
IC_WASM_VERSION="0.11.1"
TOOLS_DIR="${KEEPSAKE_TOOLS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools}"

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown >&2
  fi
}

# Prints the path of an ic-wasm binary, installing the npm-packaged one if needed.
ensure_ic_wasm() {
  local bin="$TOOLS_DIR/node_modules/@icp-sdk/ic-wasm-linux-x64/bin/ic-wasm"
  if [ ! -x "$bin" ]; then
    mkdir -p "$TOOLS_DIR"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS_DIR" \
      "@icp-sdk/ic-wasm-linux-x64@$IC_WASM_VERSION" >&2
  fi
  echo "$bin"
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
