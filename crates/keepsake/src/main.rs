//! `keepsake`: the command line over the keepsake client library. This file holds the
//! clap definitions, the connection and the upload/list/get commands; `cmd/` prints
//! the others.

mod cmd;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backend::api::{AssetKind, Memory};
use clap::{Args, Parser, Subcommand};
use ic_agent::Identity;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use keepsake::agent::{self, AgentTransport};
use keepsake::client::{Client, RetryPolicy};
use keepsake::embedded::{self, EmbeddedTransport};
use keepsake::journal::Journal;
use keepsake::ops::{self, FileResult, ProgressFactory, UploadRequest};
use keepsake::upload::{Progress, StopAfter, UploadError, UploadOptions, DEFAULT_IN_FLIGHT};
use keepsake::{derive, fsutil::hex, mime};
use serde_json::json;

/// Exit code of an upload stopped part way (resume by running the same command again).
const EXIT_INTERRUPTED: u8 = 75;

#[derive(Parser, Debug)]
#[command(
    name = "keepsake",
    version,
    about = "Keep photos and videos on the Internet Computer: parallel, resumable, verified uploads"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// `--retry-for`: long enough for a storage canister's upgrade on mainnet (stop, install,
/// start: seconds to tens of seconds), short enough that a dead network is reported soon.
const DEFAULT_RETRY_FOR_S: u64 = 30;

#[derive(Args, Debug)]
struct Global {
    /// Local state folder (embedded canister state, identity, resume journal).
    #[arg(
        long,
        global = true,
        env = "KEEPSAKE_STATE",
        default_value = ".keepsake"
    )]
    state: PathBuf,
    /// Canister Wasm for embedded mode (default: $KEEPSAKE_WASM, else the repo's build, built if missing).
    #[arg(long, global = true)]
    wasm: Option<PathBuf>,
    /// Replica or mainnet URL (`local`, `ic`, or http(s)://…); without it keepsake runs the canister embedded.
    #[arg(long, global = true, env = "KEEPSAKE_NETWORK")]
    network: Option<String>,
    /// Canister id (with --network).
    #[arg(long, global = true, env = "KEEPSAKE_CANISTER")]
    canister: Option<String>,
    /// A keepsake directory canister (with --network): the capsule's storage canister is
    /// looked up there (and cached); commands without a capsule use your first one.
    #[arg(long, global = true, env = "KEEPSAKE_DIRECTORY", conflicts_with = "canister")]
    directory: Option<String>,
    /// PEM identity (Ed25519 or secp256k1). Default: anonymous with --network, the state folder's own identity embedded.
    #[arg(long, global = true)]
    identity: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Chunks in flight per upload.
    #[arg(long, global = true, default_value_t = DEFAULT_IN_FLIGHT)]
    jobs: usize,
    /// Seconds to keep retrying a call that failed for a passing reason (network down,
    /// canister stopped for an upgrade, replica busy) before giving up (with --network).
    #[arg(long, global = true, env = "KEEPSAKE_RETRY_FOR", default_value_t = DEFAULT_RETRY_FOR_S, value_name = "SECONDS")]
    retry_for: u64,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Upload files or folders; each file becomes one memory.
    Upload {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        capsule: Option<u64>,
        /// Memory title (default: the file name).
        #[arg(long)]
        title: Option<String>,
        /// Make display (2048 px), thumbnail (512 px) and placeholder (32 px) renditions of images,
        /// and of videos a poster frame with its thumbnail and placeholder (needs ffmpeg).
        #[arg(long)]
        derivatives: bool,
        /// Chunk size in bytes (default: the canister's).
        #[arg(long)]
        chunk_size: Option<u32>,
        /// Upload files again even if an earlier run already made them memories.
        #[arg(long)]
        force: bool,
    },
    /// List memories (of one capsule, or of all your capsules).
    Ls {
        #[arg(long)]
        capsule: Option<u64>,
    },
    /// Download an asset of a memory (or a blob) and verify its SHA-256.
    Get {
        /// Memory id.
        memory: Option<u64>,
        /// original, display, thumbnail, placeholder, …
        #[arg(long, default_value = "original")]
        asset: String,
        /// Read a blob by id instead of a memory.
        #[arg(long, conflicts_with = "memory")]
        blob: Option<u64>,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Create or list capsules, manage members, revoke links.
    Capsule {
        #[command(subcommand)]
        cmd: CapsuleCmd,
    },
    /// Delete a memory (or one of its assets) and show the space it frees.
    Rm {
        memory: u64,
        /// Remove only this asset (original, display, thumbnail, placeholder, …).
        #[arg(long)]
        asset: Option<String>,
        /// Then run housekeeping now (as `keepsake gc`), so the space is free at once.
        #[arg(long)]
        gc: bool,
    },
    /// Run housekeeping now: free what deletions, aborts and expired uploads queued
    /// (controllers; embedded: the local controller).
    Gc {
        /// At most this many passes (each frees a bounded batch).
        #[arg(long, default_value_t = 10_000)]
        passes: u32,
    },
    /// Print an expiring URL to one asset of a memory (anyone holding it may open it).
    Link {
        memory: u64,
        /// original, display, thumbnail, placeholder, …
        #[arg(long, default_value = "original")]
        asset: String,
        /// How long the link works: 90s, 30m, 12h, 7d, … (1 minute to 30 days).
        #[arg(long, default_value = "1d")]
        ttl: String,
        #[command(flatten)]
        gateway: cmd::links::GatewayArg,
    },
    /// Make a memory's URLs open for anyone (on), or only for members and links (off).
    Public {
        memory: u64,
        #[arg(value_name = "on|off")]
        setting: cmd::links::OnOff,
        #[command(flatten)]
        gateway: cmd::links::GatewayArg,
    },
    /// Write every memory (assets + a JSON manifest each) into DIR; resumable, verified.
    Export {
        dir: PathBuf,
        /// Only this capsule.
        #[arg(long)]
        capsule: Option<u64>,
    },
    /// Import an export folder; a second import creates nothing. Resumable.
    Import {
        dir: PathBuf,
        /// Put everything into this capsule (default: the capsule of each folder's name).
        #[arg(long)]
        capsule: Option<u64>,
        /// Chunk size in bytes (default: the canister's).
        #[arg(long)]
        chunk_size: Option<u32>,
    },
    /// Print a shell completion script (e.g. `keepsake completions bash > /etc/bash_completion.d/keepsake`).
    Completions { shell: clap_complete::Shell },
    /// Canister figures.
    Stats,
    /// Your principal.
    Whoami,
    /// Run a local IC network (the HTTP interface) with the canister, kept in the state
    /// folder; point `--network`, icp-cli or agent-js at the URL it prints. Ctrl-C stops it.
    Serve {
        /// Port (0: any free port).
        #[arg(long, default_value_t = 4943)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Also make this principal a controller of the canister (e.g. your icp-cli
        /// identity, to upgrade it through the interface). Repeatable.
        #[arg(long = "controller")]
        controllers: Vec<String>,
        /// The web app to serve at http://127.0.0.1:<port>/ (a built directory; default:
        /// clients/web/dist of this repository, when it is built).
        #[arg(long)]
        app: Option<PathBuf>,
        /// Also run a directory canister with this many storage canisters (directory
        /// mode; 0: none). Kept in the state folder; more are added, never removed.
        #[arg(long, default_value_t = 0)]
        storage: usize,
    },
    /// Write a generated, photo-like JPEG (for demos and tests).
    SamplePhoto {
        output: PathBuf,
        #[arg(long, default_value_t = 4032)]
        width: u32,
        #[arg(long, default_value_t = 3024)]
        height: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum CapsuleCmd {
    Create {
        name: String,
    },
    List,
    /// List a capsule's members, or add / remove one.
    Members {
        capsule: u64,
        #[command(subcommand)]
        action: Option<MembersCmd>,
    },
    /// Revoke every link to the capsule's memories (owners); new links work again.
    RotateLinkKey {
        capsule: u64,
    },
    /// Join a capsule you were invited to (`capsule members add` invites).
    Accept {
        capsule: u64,
    },
    /// Capsules you were invited to and have not joined yet.
    Invitations,
}

#[derive(Subcommand, Debug)]
enum MembersCmd {
    /// Invite someone (they join with `keepsake capsule accept`), or change a member's
    /// role (owners).
    Add {
        principal: String,
        /// owner, writer or reader.
        #[arg(long, default_value = "reader")]
        role: String,
    },
    /// Remove a member or withdraw an invitation (owners; anyone may remove themselves).
    Remove { principal: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let msg = ops::human_error(&e);
            if json {
                let kind = ops::refusal(&e).map(|r| r.kind());
                println!("{}", json!({ "ok": false, "error": msg, "refusal": kind }));
            }
            eprintln!("keepsake: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `--retry-for` as a policy for calls over the network.
fn retry_policy(g: &Global) -> RetryPolicy {
    RetryPolicy::within(Duration::from_secs(g.retry_for))
}

/// Builds the client: ic-agent with `--network`, else the embedded canister.
async fn connect(g: &Global, as_controller: bool) -> anyhow::Result<Client> {
    if let Some(net) = &g.network {
        let url = agent::parse_network(net)?;
        let Some(id) = &g.canister else {
            bail!("--network needs --canister ID")
        };
        let canister = agent::parse_canister_id(id)?;
        let t = AgentTransport::connect(url, canister, g.identity.as_deref()).await?;
        return Ok(Client::new(Box::new(t)).with_retry(retry_policy(g)));
    }
    Ok(Client::new(Box::new(open_embedded(g, as_controller)?)))
}

/// The embedded canister in `--state`, called as the local controller, `--identity`,
/// or the state folder's own identity.
fn open_embedded(g: &Global, as_controller: bool) -> anyhow::Result<EmbeddedTransport> {
    let caller = if as_controller {
        ic_host::DEFAULT_CONTROLLER
    } else if let Some(pem) = &g.identity {
        agent::load_identity(pem)?
            .sender()
            .map_err(anyhow::Error::msg)?
    } else {
        keepsake::identity::load_or_create(&g.state)?
            .sender()
            .map_err(anyhow::Error::msg)?
    };
    let wasm = embedded::resolve_wasm(g.wasm.as_deref())?;
    EmbeddedTransport::open(&g.state, &wasm, caller)
}

/// `KEEPSAKE_STOP_AFTER_CHUNKS`: a test hook that stops uploads, exports and imports
/// after that many chunks, as if the process had been killed.
fn stop_after_from_env() -> anyhow::Result<Option<std::sync::Arc<StopAfter>>> {
    Ok(std::env::var("KEEPSAKE_STOP_AFTER_CHUNKS")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .context("KEEPSAKE_STOP_AFTER_CHUNKS must be a number")
        })
        .transpose()?
        .map(StopAfter::new))
}

struct Bars {
    enabled: bool,
}

impl Bars {
    /// Progress bars on a terminal, never with `--json`.
    fn new(g: &Global) -> Self {
        Self {
            enabled: !g.json && std::io::stderr().is_terminal(),
        }
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn begin(&self, total: u64, done: u64) {
        self.0.set_draw_target(ProgressDrawTarget::stderr());
        self.0.set_length(total);
        self.0.set_position(done);
        self.0.reset_eta();
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn message(&self, m: &str) {
        self.0.set_message(m.to_string());
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish();
    }
}

impl ProgressFactory for Bars {
    fn for_file(&self, label: &str) -> Box<dyn Progress> {
        if !self.enabled {
            return Box::new(keepsake::upload::NoProgress);
        }
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:24!} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("progress template")
            .progress_chars("=> "),
        );
        pb.set_message(label.to_string());
        Box::new(Bar(pb))
    }
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / 1e6 / secs
    } else {
        0.0
    }
}

async fn run(mut cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.global.directory.is_some() {
        if let Some(code) = cmd::directory::resolve(&mut cli.global, &mut cli.cmd).await? {
            return Ok(code);
        }
    }
    let g = &cli.global;
    match &cli.cmd {
        Cmd::SamplePhoto {
            output,
            width,
            height,
            seed,
        } => {
            let bytes = derive::sample_photo(*width, *height, *seed);
            keepsake::fsutil::write_atomic(output, &bytes)?;
            if g.json {
                println!(
                    "{}",
                    json!({ "ok": true, "path": output, "size": bytes.len(), "width": width, "height": height })
                );
            } else {
                println!(
                    "wrote {} ({width}x{height}, {} bytes)",
                    output.display(),
                    bytes.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Upload {
            paths,
            capsule,
            title,
            derivatives,
            chunk_size,
            force,
        } => {
            let req = UploadRequest {
                title: title.clone(),
                derivatives: *derivatives,
                force: *force,
            };
            upload(g, paths, *capsule, req, *chunk_size).await
        }
        Cmd::Ls { capsule } => ls(g, *capsule).await,
        Cmd::Get {
            memory,
            asset,
            blob,
            output,
        } => get(g, *memory, asset, *blob, output.as_deref()).await,
        Cmd::Capsule { cmd } => cmd::capsule::run(g, cmd).await,
        Cmd::Rm { memory, asset, gc } => cmd::rm::rm(g, *memory, asset.as_deref(), *gc).await,
        Cmd::Gc { passes } => cmd::rm::gc(g, *passes).await,
        Cmd::Link {
            memory,
            asset,
            ttl,
            gateway,
        } => cmd::links::link(g, *memory, asset, ttl, gateway).await,
        Cmd::Public {
            memory,
            setting,
            gateway,
        } => cmd::links::public(g, *memory, *setting, gateway).await,
        Cmd::Export { dir, capsule } => cmd::transfer::export(g, dir, *capsule).await,
        Cmd::Import {
            dir,
            capsule,
            chunk_size,
        } => cmd::transfer::import(g, dir, *capsule, *chunk_size).await,
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "keepsake",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Stats => {
            let client = connect(g, g.network.is_none() && g.identity.is_none()).await?;
            let s = client.stats().await?;
            let cfg = client.upload_config().await?;
            let v = json!({
                "blobs": s.blobs, "blob_bytes": s.blob_bytes, "capsules": s.capsules,
                "memories": s.memories,
                "open_sessions": s.open_sessions, "session_bytes": s.session_bytes,
                "arena_bytes": s.arena_bytes, "free_bytes": s.free_bytes,
                "gc_pending_bytes": s.gc_pending_bytes, "bytes_freed_total": s.bytes_freed_total,
                "stable_pages": s.stable_pages, "layout_version": s.layout_version,
                "default_chunk_size": cfg.default_chunk_size, "max_file_size": cfg.max_file_size,
            });
            if g.json {
                println!("{}", json!({ "ok": true, "stats": v }));
            } else {
                for (k, val) in v.as_object().expect("object") {
                    println!("{k:<20} {val}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve { port, bind, controllers, app, storage } => {
            cmd::serve::serve(g, cmd::serve::ServeArgs { bind: *bind, port: *port, controllers, app: app.as_deref(), storage: *storage }).await
        }
        Cmd::Whoami => {
            let client = connect(g, false).await?;
            if g.json {
                println!(
                    "{}",
                    json!({ "ok": true, "principal": client.caller().to_text(), "target": client.target() })
                );
            } else {
                println!("{}", client.caller());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn upload(
    g: &Global,
    paths: &[PathBuf],
    capsule: Option<u64>,
    req: UploadRequest,
    chunk_size: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let files = ops::collect_files(paths)?;
    if files.is_empty() {
        bail!("nothing to upload");
    }
    let client = connect(g, false).await?;
    let cap = client.resolve_capsule(capsule).await?;
    let mut journal = Journal::open(&g.state.join("journal.json"))?;
    let opts = UploadOptions {
        in_flight: g.jobs.max(1),
        chunk_size,
        stop_after: stop_after_from_env()?,
    };
    let bars = Bars::new(g);
    let t0 = Instant::now();
    let mut done: Vec<FileResult> = Vec::new();
    let mut outcome: Option<(PathBuf, anyhow::Error)> = None;
    for f in &files {
        match ops::upload_path(&client, &mut journal, f, cap.id, &req, &opts, &bars).await {
            Ok(r) => {
                if !g.json {
                    print_file_result(&r);
                }
                done.push(r);
            }
            Err(e) => {
                outcome = Some((f.clone(), anyhow::Error::new(e)));
                break;
            }
        }
    }
    // Whatever happened, the embedded canister state on disk reflects every call made.
    client.checkpoint()?;
    let secs = t0.elapsed().as_secs_f64();
    let bytes: u64 = done.iter().map(|r| r.bytes_sent).sum();
    match outcome {
        None => {
            if g.json {
                println!(
                    "{}",
                    serde_json::to_string(&json!({
                        "ok": true, "capsule_id": cap.id, "files": done, "bytes_sent": bytes,
                        "seconds": secs, "mb_per_s": mb_per_s(bytes, secs)
                    }))?
                );
            } else if done.len() > 1 {
                println!(
                    "{} files, {:.1} MB sent in {secs:.1} s ({:.1} MB/s)",
                    done.len(),
                    bytes as f64 / 1e6,
                    mb_per_s(bytes, secs)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some((path, e)) => {
            if let Some(UploadError::Interrupted {
                session_id,
                chunks_sent,
                chunks_total,
            }) = e.downcast_ref::<UploadError>()
            {
                if g.json {
                    println!(
                        "{}",
                        json!({ "ok": false, "interrupted": true, "capsule_id": cap.id, "files": done,
                                "interrupted_file": { "path": path, "session_id": session_id,
                                "chunks_sent": chunks_sent, "chunks_total": chunks_total } })
                    );
                }
                eprintln!("keepsake: {}: {e}", path.display());
                return Ok(ExitCode::from(EXIT_INTERRUPTED));
            }
            Err(e.context(format!("{}", path.display())))
        }
    }
}

fn print_file_result(r: &FileResult) {
    if r.skipped {
        println!(
            "{} is already memory {} in capsule {} (unchanged since it was uploaded; --force uploads it again)",
            r.path,
            r.memory_id.unwrap_or_default(),
            r.capsule_id
        );
        return;
    }
    let what = match r.memory_id {
        Some(m) => format!("memory {m}"),
        None => format!("blob {}", r.original.blob_id),
    };
    let kinds: Vec<String> = r
        .assets
        .iter()
        .map(|a| format!("{:?}", a.kind).to_ascii_lowercase())
        .collect();
    let resumed = if r.original.resumed { ", resumed" } else { "" };
    println!(
        "{} → {what} in capsule {} [{}]: {:.1} MB, {}/{} chunks sent{resumed}, {:.1} MB/s",
        r.path,
        r.capsule_id,
        kinds.join(", "),
        r.original.size as f64 / 1e6,
        r.original.chunks_sent,
        r.original.chunks_total,
        mb_per_s(r.original.bytes_sent, r.original.seconds),
    );
    for w in &r.warnings {
        eprintln!("keepsake: warning: {}: {w}", r.path);
    }
}

fn memory_json(m: &Memory) -> serde_json::Value {
    json!({
        "id": m.id, "capsule_id": m.capsule_id, "title": m.meta.title, "kind": m.meta.kind,
        "created_at_ns": m.created_at_ns, "created_by": m.created_by.to_text(),
        "assets": m.assets.iter().map(|a| json!({
            "kind": a.kind, "blob_id": a.blob_id, "inline": a.inline.is_some(), "size": a.size,
            "sha256": hex(&a.sha256), "mime": a.mime, "width": a.width, "height": a.height,
            "duration_ms": a.duration_ms,
        })).collect::<Vec<_>>(),
    })
}

async fn ls(g: &Global, capsule: Option<u64>) -> anyhow::Result<ExitCode> {
    let client = connect(g, false).await?;
    let capsules = match capsule {
        Some(id) => vec![client.resolve_capsule(Some(id)).await?],
        None => client.capsules_list().await?,
    };
    let mut memories = Vec::new();
    for c in &capsules {
        match client.memories_all(c.id).await {
            Ok(ms) => memories.extend(ms),
            Err(e) if e.is_unknown_method() => return ls_blobs(g, &client).await,
            Err(e) => return Err(e.into()),
        }
    }
    if g.json {
        let v: Vec<_> = memories.iter().map(memory_json).collect();
        println!("{}", json!({ "ok": true, "memories": v }));
    } else if memories.is_empty() {
        println!("no memories yet (keepsake upload FILE)");
    } else {
        println!(
            "{:>6} {:>7}  {:<9} {:>12}  {:<32} assets",
            "id", "capsule", "kind", "size", "title"
        );
        for m in &memories {
            let size = m
                .assets
                .iter()
                .find(|a| a.kind == AssetKind::Original)
                .map(|a| a.size)
                .unwrap_or(0);
            let kinds: Vec<String> = m
                .assets
                .iter()
                .map(|a| format!("{:?}", a.kind).to_ascii_lowercase())
                .collect();
            println!(
                "{:>6} {:>7}  {:<9} {:>12}  {:<32} {}",
                m.id,
                m.capsule_id,
                format!("{:?}", m.meta.kind),
                size,
                m.meta.title,
                kinds.join(",")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ls` against a canister without the memories API: the caller's finished uploads.
async fn ls_blobs(g: &Global, client: &Client) -> anyhow::Result<ExitCode> {
    let sessions = client.uploads_list().await?;
    let blobs: Vec<_> = sessions
        .iter()
        .filter_map(|s| match s.state {
            backend::api::SessionState::Finished { blob_id } => Some((blob_id, s)),
            _ => None,
        })
        .collect();
    if g.json {
        let v: Vec<_> = blobs
            .iter()
            .map(|(b, s)| json!({ "blob_id": b, "capsule_id": s.capsule_id, "name": s.name, "size": s.size, "mime": s.mime }))
            .collect();
        println!("{}", json!({ "ok": true, "memories": [], "blobs": v }));
    } else {
        println!("(this canister has no memories API: listing your finished uploads)");
        for (b, s) in &blobs {
            println!(
                "blob {b:>6}  capsule {:>4}  {:>12}  {}",
                s.capsule_id, s.size, s.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(
    g: &Global,
    memory: Option<u64>,
    asset: &str,
    blob: Option<u64>,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let client = connect(g, false).await?;
    let jobs = g.jobs.max(1);
    let d = match (memory, blob) {
        (_, Some(b)) => {
            let out = output
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(format!("blob-{b}.bin")));
            ops::download_blob(&client, b, None, &out, jobs).await?
        }
        (Some(m), None) => {
            let mem = client.memories_get(m).await?;
            let a = ops::find_asset(&mem, ops::parse_asset_kind(asset)?)?;
            let out = output.map(Path::to_path_buf).unwrap_or_else(|| {
                let stem = format!(
                    "memory-{m}-{}",
                    format!("{:?}", a.kind).to_ascii_lowercase()
                );
                PathBuf::from(format!("{stem}.{}", mime::extension(&a.mime)))
            });
            ops::download_asset(&client, a, &out, jobs).await?
        }
        (None, None) => bail!("give a memory id (or --blob ID)"),
    };
    if g.json {
        println!("{}", json!({ "ok": true, "download": d }));
    } else {
        println!(
            "wrote {} ({} bytes, sha256 {} verified)",
            d.path, d.size, d.sha256
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks, and the sharing commands parse (an argument
    /// named like a global option only fails when parsed).
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cmd = |args: &[&str]| {
            Cli::try_parse_from([&["keepsake", "--state", "s"], args].concat())
                .unwrap()
                .cmd
        };
        let Cmd::Public {
            memory, setting, ..
        } = cmd(&["public", "4", "off"])
        else {
            panic!("public")
        };
        assert_eq!((memory, setting), (4, cmd::links::OnOff::Off));
        let Cmd::Link { asset, ttl, .. } = cmd(&["link", "4", "--gateway", "http://g:1"]) else {
            panic!("link")
        };
        assert_eq!((asset.as_str(), ttl.as_str()), ("original", "1d"));
        assert!(matches!(
            cmd(&["capsule", "rotate-link-key", "2"]),
            Cmd::Capsule {
                cmd: CapsuleCmd::RotateLinkKey { capsule: 2 }
            }
        ));
    }
}
