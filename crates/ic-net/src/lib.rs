//! `ic-net`: the Internet Computer's HTTPS interface in front of an [`ic_host::Host`],
//! so that unmodified IC clients (ic-agent, agent-js, icp-cli) talk to a local network
//! with their default settings: signatures checked, certificates signed by the host's
//! BLS root key, query responses signed by a node key.
//!
//! Endpoints (the interface specification's): `GET /api/v2/status`;
//! `POST /api/{v2,v3,v4}/canister/<id>/call` (v2 answers 202 and is polled with
//! `read_state`, v3/v4 wait for the certified answer); `POST /api/{v2,v3}/canister/<id>/query`;
//! `POST /api/{v2,v3}/canister/<id>/read_state` and `/api/{v2,v3}/subnet/<id>/read_state`.
//! Every other request for `<canister-id>.localhost` (or with `?canisterId=`) goes to the
//! HTTP [`gateway`], a verified client of those endpoints.
//!
//! Execution stays apart: the host runs on its own thread ([`exec`]), the HTTP front
//! ([`routes`], tokio + hyper) sends it commands through a channel.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let host = ic_host::Host::open(std::path::Path::new("state"))?;
//! let net = ic_net::Network::start(host, "127.0.0.1:4943".parse()?)?;
//! println!("{} root key {:02x?}", net.url(), net.root_key());
//! net.shutdown()?;
//! # Ok(()) }
//! ```

pub mod app;
pub mod auth;
pub mod effective;
pub mod envelope;
pub mod exec;
pub mod gateway;
pub mod ingress;
mod routes;
pub mod subnet;
pub mod tree;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use ic_host::Host;

pub use exec::ExecHandle;
pub use subnet::Subnet;

/// A running local network: the host thread and the HTTP front.
pub struct Network {
    addr: SocketAddr,
    subnet: Arc<Subnet>,
    exec: ExecHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    front: Option<JoinHandle<Result<()>>>,
}

impl Network {
    /// Starts serving `host` on `addr` (port 0 picks a free port). A host kept in a
    /// directory keeps the ingress history and the node key there too.
    pub fn start(host: Host, addr: SocketAddr) -> Result<Network> {
        Self::start_with_app(host, addr, None)
    }

    /// [`Network::start`], also serving `app` at `/` (see [`app`]).
    pub fn start_with_app(host: Host, addr: SocketAddr, app: Option<app::App>) -> Result<Network> {
        let dir = host.dir().map(std::path::Path::to_path_buf);
        let history = match &dir {
            Some(d) => ingress::History::open(&d.join(ingress::INGRESS_FILE), exec::now_ns())?,
            None => ingress::History::in_memory(),
        };
        let node = subnet::NodeKey::load_or_create(dir.as_deref())?;
        let subnet = Arc::new(Subnet::new(host.subnet_key().clone(), node));
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (exec, host_thread, tx) = exec::spawn(host, history);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let front_subnet = subnet.clone();
        let front_exec = exec.clone();
        let front = std::thread::Builder::new().name("ic-net front".into()).spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let served = rt.block_on(routes::serve(listener, front_subnet, front_exec, app, stopped));
            // Stop the host after the front: every answer handed out is durable.
            let (done, wait) = tokio::sync::oneshot::channel();
            let closed = match tx.send(exec::Command::Shutdown(done)) {
                Ok(()) => wait.blocking_recv().unwrap_or_else(|_| Err(anyhow!("the host thread stopped"))),
                Err(_) => Err(anyhow!("the host thread stopped")),
            };
            host_thread.join().map_err(|_| anyhow!("the host thread panicked"))?;
            served.and(closed)
        })?;
        Ok(Network { addr, subnet, exec, stop: Some(stop), front: Some(front) })
    }

    /// `http://127.0.0.1:<port>` (what clients take as the network URL).
    pub fn url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { self.addr.ip().to_string() };
        format!("http://{ip}:{}", self.addr.port())
    }

    /// The root key (DER), which local clients fetch from `/api/v2/status`.
    pub fn root_key(&self) -> Vec<u8> {
        self.subnet.root_key_der.clone()
    }

    pub fn subnet(&self) -> &Subnet {
        &self.subnet
    }

    /// The channel to the host thread (setup, tests, benchmarks).
    pub fn exec(&self) -> &ExecHandle {
        &self.exec
    }

    /// Stops taking requests, lets the host finish and close its store cleanly.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.front.take() {
            Some(t) => t.join().map_err(|_| anyhow!("the network front panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            eprintln!("ic-net: stopping the network: {e:#}");
        }
    }
}
