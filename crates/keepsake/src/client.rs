//! Typed client over a [`Transport`]: every request is built from the canister's own
//! Candid types (`backend::api`), so the client never drifts from the canister.
//! Transient transport failures are retried with exponential backoff; a typed refusal
//! of the canister (`api::Error`) is a reply, and is never retried.

use std::time::Duration;

use backend::api::{
    self, AssetKind, BeginArgs, BlobMeta, Capsule, CapsuleCreateArgs, HttpRequest, HttpResponse,
    Link, Memory, MemoryCreateArgs, MemoryPage, PutChunkOk, Session, Stats, UploadConfig,
};
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use crate::transport::{CallKind, Request, Transport, TransportError};

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The canister refused (typed, with its message). Never retried.
    Canister(api::Error),
    /// No reply (after retries, for transient failures).
    Transport(TransportError),
    /// The reply did not decode as the expected Candid type.
    Decode {
        method: &'static str,
        message: String,
    },
}

impl ClientError {
    pub fn canister(&self) -> Option<&api::Error> {
        match self {
            ClientError::Canister(e) => Some(e),
            _ => None,
        }
    }

    /// True when the canister does not export the method (an older canister).
    pub fn is_unknown_method(&self) -> bool {
        match self {
            ClientError::Transport(TransportError::Fatal { message, .. }) => {
                let m = message.to_ascii_lowercase();
                m.contains("has no update method")
                    || m.contains("has no query method")
                    || m.contains("method not found")
                    || m.contains("no such method")
                    || m.contains("not exported")
                    || m.contains("does not export")
                    || m.contains("unknown method")
            }
            _ => false,
        }
    }
}

/// A clear, human message for every refusal of the canister.
pub fn describe_refusal(e: &api::Error) -> String {
    match e {
        api::Error::QuotaExceeded(m) => format!("quota exceeded: {m}"),
        api::Error::Unauthorized(m) => format!("not allowed: {m}"),
        api::Error::Expired(m) => {
            format!("upload session expired: {m} (run the command again to start a fresh upload)")
        }
        api::Error::ChecksumMismatch(m) => {
            format!("checksum mismatch: {m} (did the file change while it was uploading?)")
        }
        api::Error::NotFound(m) => format!("not found: {m}"),
        api::Error::InvalidArgument(m) => format!("invalid request: {m}"),
        api::Error::Conflict(m) => format!("conflict: {m}"),
        api::Error::InProgress(m) => format!("still hashing (call again): {m}"),
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Canister(e) => f.write_str(&describe_refusal(e)),
            ClientError::Transport(e) => write!(f, "{e}"),
            ClientError::Decode { method, message } => {
                write!(f, "could not decode the reply of {method}: {message}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

pub type ClientResult<T> = Result<T, ClientError>;

/// Retry policy for transient transport failures: at most `attempts` tries, and no
/// retry that would start after `give_up_after` from the first try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(8),
            give_up_after: Duration::MAX,
        }
    }
}

impl RetryPolicy {
    /// Retries for as long as `d` (the CLI's `--retry-for`), however many tries that is.
    pub fn within(d: Duration) -> Self {
        Self { attempts: u32::MAX, give_up_after: d, ..Self::default() }
    }

    pub fn backoff(&self, attempt: u32) -> Duration {
        let d = self.first_backoff.saturating_mul(1u32 << attempt.min(16));
        d.min(self.max_backoff)
    }

    /// Whether try number `attempt + 1` (0-based `attempt` failed) may follow after
    /// its backoff, `elapsed` after the first try started.
    pub fn may_retry(&self, attempt: u32, elapsed: Duration) -> bool {
        attempt.saturating_add(1) < self.attempts && elapsed.saturating_add(self.backoff(attempt)) <= self.give_up_after
    }

    /// Runs `call` again after transient failures, with backoff, while the policy allows.
    pub async fn run<T, F: std::future::Future<Output = Result<T, TransportError>>>(
        &self,
        mut call: impl FnMut() -> F,
    ) -> Result<T, TransportError> {
        let start = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            match call().await {
                Err(e) if e.is_transient() && self.may_retry(attempt, start.elapsed()) => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Request builders: pure functions from typed arguments to [`Request`]s. The agent
/// transport sends exactly these; they are unit-tested against `backend.did`.
/// Items asked for per page of a paginated list (the canister may return fewer: its
/// pages are bounded by bytes too).
const PAGE: u32 = 50;

/// Every item of a paginated list: asks for pages from `cursor = None` on, following
/// `next_cursor` until it is `null` (or stops moving).
async fn all_pages<T, F, Fut>(mut page: F) -> ClientResult<Vec<T>>
where
    F: FnMut(Option<u64>) -> Fut,
    Fut: std::future::Future<Output = ClientResult<(Vec<T>, Option<u64>)>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let (items, next) = page(cursor).await?;
        out.extend(items);
        match next {
            Some(c) if Some(c) != cursor => cursor = Some(c),
            _ => return Ok(out),
        }
    }
}

pub mod requests {
    use super::*;

    fn enc<A: ArgumentEncoder>(kind: CallKind, method: &'static str, args: A) -> Request {
        // Encoding our own well-typed values cannot fail.
        let arg = candid::encode_args(args).expect("candid encoding of a typed argument");
        Request { kind, method, arg }
    }
    use CallKind::{Query, Update};

    pub fn upload_config() -> Request {
        enc(Query, "upload_config", ())
    }
    pub fn stats() -> Request {
        enc(Query, "stats", ())
    }
    pub fn capsules_create(name: &str) -> Request {
        enc(
            Update,
            "capsules_create",
            (CapsuleCreateArgs {
                name: name.to_string(),
            },),
        )
    }
    pub fn capsules_page(cursor: Option<u64>, limit: u32) -> Request {
        enc(Query, "capsules_page", (cursor, limit))
    }
    pub fn capsules_invitations(cursor: Option<u64>, limit: u32) -> Request {
        enc(Query, "capsules_invitations", (cursor, limit))
    }
    pub fn capsules_accept(id: u64) -> Request {
        enc(Update, "capsules_accept", (id,))
    }
    pub fn capsules_get(id: u64) -> Request {
        enc(Query, "capsules_get", (id,))
    }
    pub fn uploads_begin(args: &BeginArgs) -> Request {
        enc(Update, "uploads_begin", (args.clone(),))
    }
    pub fn uploads_put_chunk(session: u64, idx: u32, bytes: Vec<u8>) -> Request {
        enc(
            Update,
            "uploads_put_chunk",
            (session, idx, ByteBuf::from(bytes)),
        )
    }
    pub fn uploads_finish(session: u64, sha256: &[u8], total_len: u64) -> Request {
        enc(
            Update,
            "uploads_finish",
            (session, ByteBuf::from(sha256.to_vec()), total_len),
        )
    }
    pub fn uploads_abort(session: u64) -> Request {
        enc(Update, "uploads_abort", (session,))
    }
    pub fn uploads_status(session: u64) -> Request {
        enc(Query, "uploads_status", (session,))
    }
    pub fn uploads_page(cursor: Option<u64>, limit: Option<u32>) -> Request {
        let args = api::UploadsPageArgs {
            capsule_id: None,
            cursor,
            limit,
        };
        enc(Query, "uploads_page", (args,))
    }
    pub fn blobs_meta(blob: u64) -> Request {
        enc(Query, "blobs_meta", (blob,))
    }
    pub fn blobs_read_chunk(blob: u64, idx: u32) -> Request {
        enc(Query, "blobs_read_chunk", (blob, idx))
    }
    pub fn blobs_read_range(blob: u64, offset: u64, len: u64) -> Request {
        enc(Query, "blobs_read_range", (blob, offset, len))
    }
    pub fn memories_create(args: &MemoryCreateArgs) -> Request {
        enc(Update, "memories_create", (args.clone(),))
    }
    pub fn memories_get(id: u64) -> Request {
        enc(Query, "memories_get", (id,))
    }
    pub fn memories_list(capsule: u64, cursor: Option<u64>, limit: u32) -> Request {
        enc(Query, "memories_list", (capsule, cursor, limit))
    }
    pub fn memories_delete(id: u64) -> Request {
        enc(Update, "memories_delete", (id,))
    }
    pub fn capsules_set_member(id: u64, who: Principal, role: api::Role) -> Request {
        enc(Update, "capsules_set_member", (id, who, role))
    }
    pub fn capsules_remove_member(id: u64, who: Principal) -> Request {
        enc(Update, "capsules_remove_member", (id, who))
    }
    pub fn admin_set_config(update: &api::ConfigUpdate) -> Request {
        enc(Update, "admin_set_config", (update.clone(),))
    }
    pub fn admin_gc() -> Request {
        enc(Update, "admin_gc", ())
    }
    pub fn memories_remove_asset(id: u64, kind: AssetKind) -> Request {
        enc(Update, "memories_remove_asset", (id, kind))
    }
    pub fn links_create(memory: u64, kind: AssetKind, ttl_secs: u64) -> Request {
        enc(Query, "links_create", (memory, kind, ttl_secs))
    }
    pub fn memories_set_public(memory: u64, public: bool) -> Request {
        enc(Update, "memories_set_public", (memory, public))
    }
    pub fn capsules_rotate_link_key(capsule: u64) -> Request {
        enc(Update, "capsules_rotate_link_key", (capsule,))
    }
    pub fn http_request(req: &HttpRequest) -> Request {
        enc(Query, "http_request", (req.clone(),))
    }
}

/// The typed client. Cheap to share by reference across in-flight futures.
pub struct Client {
    transport: Box<dyn Transport>,
    retry: RetryPolicy,
}

impl Client {
    pub fn new(transport: Box<dyn Transport>) -> Self {
        Self {
            transport,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn caller(&self) -> Principal {
        self.transport.caller()
    }

    pub fn target(&self) -> String {
        self.transport.target()
    }

    pub fn transport(&self) -> &dyn Transport {
        &*self.transport
    }

    pub fn checkpoint(&self) -> anyhow::Result<()> {
        self.transport.checkpoint()
    }

    /// Sends `req`, retrying transient failures with exponential backoff.
    pub async fn send_raw(&self, req: Request) -> Result<Vec<u8>, TransportError> {
        self.retry.run(|| self.transport.call(req.clone())).await
    }

    async fn send<R>(&self, req: Request) -> ClientResult<R>
    where
        R: for<'a> ArgumentDecoder<'a>,
    {
        let method = req.method;
        let bytes = self.send_raw(req).await.map_err(ClientError::Transport)?;
        candid::decode_args(&bytes).map_err(|e| ClientError::Decode {
            method,
            message: e.to_string(),
        })
    }

    /// A call whose reply is `Result<T, api::Error>`.
    async fn send_result<T>(&self, req: Request) -> ClientResult<T>
    where
        T: CandidType + DeserializeOwned,
    {
        let (r,): (api::Result<T>,) = self.send(req).await?;
        r.map_err(ClientError::Canister)
    }

    pub async fn upload_config(&self) -> ClientResult<UploadConfig> {
        Ok(self
            .send::<(UploadConfig,)>(requests::upload_config())
            .await?
            .0)
    }
    /// Figures of the whole canister (controllers only): on an embedded canister, asked
    /// as its controller, which the local user is; elsewhere as the caller.
    pub async fn stats(&self) -> ClientResult<Stats> {
        let req = requests::stats();
        let Some(reply) = self.transport.call_as_controller(req.clone()) else {
            return Ok(self.send::<(Stats,)>(req).await?.0);
        };
        let bytes = reply.await.map_err(ClientError::Transport)?;
        let (s,): (Stats,) = candid::decode_args(&bytes).map_err(|e| ClientError::Decode {
            method: "stats",
            message: e.to_string(),
        })?;
        Ok(s)
    }
    pub async fn capsules_create(&self, name: &str) -> ClientResult<Capsule> {
        self.send_result(requests::capsules_create(name)).await
    }
    /// Every capsule the caller is a member of, following `next_cursor`.
    pub async fn capsules_list(&self) -> ClientResult<Vec<Capsule>> {
        all_pages(|cursor| async move {
            let (p,): (api::CapsulePage,) = self.send(requests::capsules_page(cursor, PAGE)).await?;
            Ok((p.capsules, p.next_cursor))
        })
        .await
    }
    /// Every invitation the caller has not accepted yet, following `next_cursor`.
    pub async fn capsules_invitations(&self) -> ClientResult<Vec<api::Invitation>> {
        all_pages(|cursor| async move {
            let (p,): (api::InvitationPage,) =
                self.send(requests::capsules_invitations(cursor, PAGE)).await?;
            Ok((p.invitations, p.next_cursor))
        })
        .await
    }
    /// Joins a capsule the caller was invited to, with the invited role.
    pub async fn capsules_accept(&self, id: u64) -> ClientResult<Capsule> {
        self.send_result(requests::capsules_accept(id)).await
    }
    pub async fn uploads_begin(&self, args: &BeginArgs) -> ClientResult<Session> {
        self.send_result(requests::uploads_begin(args)).await
    }
    pub async fn uploads_put_chunk(
        &self,
        session: u64,
        idx: u32,
        bytes: Vec<u8>,
    ) -> ClientResult<PutChunkOk> {
        self.send_result(requests::uploads_put_chunk(session, idx, bytes))
            .await
    }
    pub async fn uploads_finish(
        &self,
        session: u64,
        sha256: &[u8],
        total_len: u64,
    ) -> ClientResult<BlobMeta> {
        self.send_result(requests::uploads_finish(session, sha256, total_len))
            .await
    }
    pub async fn uploads_abort(&self, session: u64) -> ClientResult<()> {
        self.send_result(requests::uploads_abort(session)).await
    }
    pub async fn uploads_status(&self, session: u64) -> ClientResult<Session> {
        self.send_result(requests::uploads_status(session)).await
    }
    /// Every open upload session of the caller, following `next_cursor`.
    pub async fn uploads_list(&self) -> ClientResult<Vec<Session>> {
        all_pages(|cursor| async move {
            let p: api::SessionPage = self.send_result(requests::uploads_page(cursor, None)).await?;
            Ok((p.sessions, p.next_cursor))
        })
        .await
    }
    pub async fn blobs_meta(&self, blob: u64) -> ClientResult<BlobMeta> {
        self.send_result(requests::blobs_meta(blob)).await
    }
    pub async fn blobs_read_chunk(&self, blob: u64, idx: u32) -> ClientResult<Vec<u8>> {
        self.send_result::<ByteBuf>(requests::blobs_read_chunk(blob, idx))
            .await
            .map(ByteBuf::into_vec)
    }
    pub async fn blobs_read_range(
        &self,
        blob: u64,
        offset: u64,
        len: u64,
    ) -> ClientResult<Vec<u8>> {
        self.send_result::<ByteBuf>(requests::blobs_read_range(blob, offset, len))
            .await
            .map(ByteBuf::into_vec)
    }
    pub async fn memories_create(&self, args: &MemoryCreateArgs) -> ClientResult<Memory> {
        self.send_result(requests::memories_create(args)).await
    }
    pub async fn memories_get(&self, id: u64) -> ClientResult<Memory> {
        self.send_result(requests::memories_get(id)).await
    }
    pub async fn memories_list(
        &self,
        capsule: u64,
        cursor: Option<u64>,
        limit: u32,
    ) -> ClientResult<MemoryPage> {
        self.send_result(requests::memories_list(capsule, cursor, limit))
            .await
    }
    pub async fn memories_delete(&self, id: u64) -> ClientResult<()> {
        self.send_result(requests::memories_delete(id)).await
    }

    pub async fn capsules_get(&self, id: u64) -> ClientResult<Capsule> {
        self.send_result(requests::capsules_get(id)).await
    }
    pub async fn capsules_remove_member(&self, id: u64, who: Principal) -> ClientResult<Capsule> {
        self.send_result(requests::capsules_remove_member(id, who))
            .await
    }
    pub async fn memories_remove_asset(&self, id: u64, kind: AssetKind) -> ClientResult<Memory> {
        self.send_result(requests::memories_remove_asset(id, kind))
            .await
    }

    pub async fn capsules_set_member(
        &self,
        id: u64,
        who: Principal,
        role: api::Role,
    ) -> ClientResult<Capsule> {
        self.send_result(requests::capsules_set_member(id, who, role))
            .await
    }
    /// An expiring link to one asset (any reader of the memory's capsule).
    pub async fn links_create(
        &self,
        memory: u64,
        kind: AssetKind,
        ttl_secs: u64,
    ) -> ClientResult<Link> {
        self.send_result(requests::links_create(memory, kind, ttl_secs))
            .await
    }
    /// Owners of the memory's capsule.
    pub async fn memories_set_public(&self, memory: u64, public: bool) -> ClientResult<()> {
        self.send_result(requests::memories_set_public(memory, public))
            .await
    }
    /// Owners: revokes every link of the capsule; returns the new key version.
    pub async fn capsules_rotate_link_key(&self, capsule: u64) -> ClientResult<u32> {
        self.send_result(requests::capsules_rotate_link_key(capsule))
            .await
    }
    /// What an HTTP gateway sends (the canister answers as to the caller).
    pub async fn http_request(&self, req: &HttpRequest) -> ClientResult<HttpResponse> {
        Ok(self
            .send::<(HttpResponse,)>(requests::http_request(req))
            .await?
            .0)
    }
    /// Controllers only.
    pub async fn admin_set_config(&self, update: &api::ConfigUpdate) -> ClientResult<UploadConfig> {
        self.send_result(requests::admin_set_config(update)).await
    }
    /// Controllers only.
    pub async fn admin_gc(&self) -> ClientResult<api::GcReport> {
        self.send_result(requests::admin_gc()).await
    }

    /// Every memory of a capsule, following `next_cursor`.
    pub async fn memories_all(&self, capsule: u64) -> ClientResult<Vec<Memory>> {
        all_pages(|cursor| async move {
            let p = self.memories_list(capsule, cursor, PAGE).await?;
            Ok((p.memories, p.next_cursor))
        })
        .await
    }

    /// `--capsule ID`, else the caller's first capsule, else a new one named "default".
    pub async fn resolve_capsule(&self, wanted: Option<u64>) -> ClientResult<Capsule> {
        let list = self.capsules_list().await?;
        if let Some(id) = wanted {
            return list.into_iter().find(|c| c.id == id).ok_or_else(|| {
                ClientError::Canister(api::Error::NotFound(format!(
                    "capsule {id} does not exist or you ({}) are not a member",
                    self.caller()
                )))
            });
        }
        let mut list = list;
        list.sort_by_key(|c| c.id);
        match list
            .into_iter()
            .find(|c| matches!(c.my_role, Some(api::Role::Owner) | Some(api::Role::Writer)))
        {
            Some(c) => Ok(c),
            None => self.capsules_create("default").await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stop_at_the_attempt_cap_or_the_time_budget() {
        let d = RetryPolicy::default(); // 6 tries, backoffs 0.2, 0.4, 0.8, 1.6, 3.2 s
        assert!(d.may_retry(4, Duration::from_secs(3)));
        assert!(!d.may_retry(5, Duration::ZERO), "six tries at most");

        let w = RetryPolicy::within(Duration::from_secs(30));
        // Tries start at 0, 0.2, 0.6, 1.4, 3.0, 6.2 s, then 8 s apart (the backoff's cap):
        // 12.6, 20.6, 28.6 s; the next would start at 36.6 s, past the budget.
        let mut elapsed = Duration::ZERO;
        let mut tries = 1;
        while w.may_retry(tries - 1, elapsed) {
            elapsed += w.backoff(tries - 1);
            tries += 1;
        }
        assert_eq!(tries, 9, "{elapsed:?}");
        assert!(elapsed <= Duration::from_secs(30) && elapsed + w.backoff(tries - 1) > Duration::from_secs(30));
        // A slow first try leaves less time for retries.
        assert!(!w.may_retry(0, Duration::from_millis(29_900)));
    }
}
