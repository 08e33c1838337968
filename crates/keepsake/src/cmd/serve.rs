//! `keepsake serve`: a local Internet Computer network (`ic-net` in front of the
//! embedded host) with the `backend` canister installed or upgraded to the current
//! Wasm. Its state is the state folder's `host/` directory, the same one embedded mode
//! uses (canisters, page store, plus the network's `ingress.log` and `node.key`), so
//! what was kept embedded is served, and a restart (also after `kill -9`) finds
//! everything. The directory is locked while open: embedded commands on the same folder
//! wait for `serve` to stop (use `--network`).

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use candid::Principal;
use keepsake::embedded;
use keepsake::fsutil::hex;
use serde_json::json;

pub struct ServeArgs<'a> {
    pub bind: IpAddr,
    pub port: u16,
    pub controllers: &'a [String],
    pub app: Option<&'a std::path::Path>,
    /// Storage canisters of a directory (0: no directory).
    pub storage: usize,
}

pub async fn serve(g: &crate::Global, a: ServeArgs<'_>) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&g.state).with_context(|| format!("creating {}", g.state.display()))?;
    let wasm_path = embedded::resolve_wasm(g.wasm.as_deref())?;
    let wasm = std::fs::read(&wasm_path).with_context(|| format!("reading the canister Wasm {}", wasm_path.display()))?;
    let mut host = embedded::open_host(&g.state, &wasm)?;
    let canister = host.canister_id();
    if !a.controllers.is_empty() {
        let mut all = host.controllers().to_vec();
        for c in a.controllers {
            let p = Principal::from_text(c).map_err(|e| anyhow::anyhow!("--controller {c}: not a principal ({e})"))?;
            if !all.contains(&p) {
                all.push(p);
            }
        }
        host.set_controllers(all);
        host.sync()?;
    }
    let directory = if a.storage > 0 {
        let dir_wasm_path = embedded::resolve_directory_wasm(&wasm_path);
        let dir_wasm = std::fs::read(&dir_wasm_path)
            .with_context(|| format!("reading the directory Wasm {} (scripts/build.sh builds it)", dir_wasm_path.display()))?;
        let extra: Vec<Principal> = host.controllers().to_vec();
        let state = g.state.join(embedded::HOST_DIR);
        let (id, storage) = keepsake::directory::setup_local(&mut host, &state, &dir_wasm, &wasm, a.storage, &extra)?;
        host.sync()?;
        Some((id, storage))
    } else {
        None
    };
    let app_dir = match a.app {
        Some(dir) => Some(dir.to_path_buf()),
        None => Some(embedded::repo_root().join("clients/web/dist")).filter(|d| d.join("index.html").is_file()),
    };
    let app = app_dir.map(|dir| ic_net::app::App { dir, config_json: json!({ "canister": canister.to_text() }).to_string() });
    let app_url = app.as_ref().map(|_| ());
    let net = ic_net::Network::start_with_app(host, SocketAddr::new(a.bind, a.port), app)?;
    let root_key = hex(&net.root_key());
    let dir_json = directory.as_ref().map(|(d, s)| json!({ "id": d.to_text(), "storage": s.iter().map(Principal::to_text).collect::<Vec<_>>() }));
    if g.json {
        println!("{}", json!({ "ok": true, "url": net.url(), "canister": canister.to_text(), "root_key": root_key, "directory": dir_json }));
    } else {
        println!("keepsake: local IC network at {}", net.url());
        println!("canister  {canister}");
        println!("root key  {root_key}");
        if let Some((d, storage)) = &directory {
            println!("directory {d}  (storage: {})", storage.iter().map(Principal::to_text).collect::<Vec<_>>().join(", "));
        }
        println!("state     {}", g.state.join(embedded::HOST_DIR).display());
        if app_url.is_some() {
            println!("web app   {}/  (photos: http://{canister}.localhost:{}/m/<memory>/<asset>)", net.url(), net.url().rsplit(':').next().unwrap_or_default());
        }
        println!("try: keepsake --network {} --canister {canister} ls   (Ctrl-C stops)", net.url());
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    wait_for_stop().await?;
    eprintln!("keepsake: stopping the network …");
    tokio::task::spawn_blocking(move || net.shutdown()).await??;
    eprintln!("keepsake: stopped; state kept in {}", g.state.display());
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok(())
    }
}
