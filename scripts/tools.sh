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

CARGO_FUZZ_VERSION="0.13.2"

# Prints the path of a cargo-fuzz binary, installing it (from crates.io) if needed.
ensure_cargo_fuzz() {
  local bin="$TOOLS_DIR/bin/cargo-fuzz"
  if [ ! -x "$bin" ]; then
    cargo install --locked --root "$TOOLS_DIR" "cargo-fuzz@$CARGO_FUZZ_VERSION" >&2
  fi
  echo "$bin"
}
