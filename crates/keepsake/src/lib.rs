//! keepsake client library: a typed client over a transport (embedded host or
//! ic-agent), a parallel, resumable, verified upload engine, a resume journal and real
//! image derivatives. The `keepsake` binary is a thin clap layer over [`ops`].

pub mod agent;
pub mod archive;
pub mod client;
pub mod derive;
pub mod directory;
pub mod download;
pub mod embedded;
pub mod export;
pub mod fsutil;
pub mod identity;
pub mod import;
pub mod journal;
pub mod links;
pub mod members;
pub mod mime;
pub mod ops;
pub mod poster;
pub mod remove;
pub mod transport;
pub mod upload;

pub use client::{Client, ClientError};
pub use transport::{CallKind, Request, Transport, TransportError};
