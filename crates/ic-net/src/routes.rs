//! The HTTP routes: each request is read (at most 2 MiB), parsed, checked (expiry,
//! effective canister id, sender signature) and only then handed to the host thread.
//! Refusals before that point are HTTP 4xx with a text body, as a replica answers them;
//! refusals of the host before a call is accepted are non-replicated rejections (HTTP 200
//! with a CBOR reject); answers are certified.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use candid::Principal;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use ic_host::Reject;
use ic_transport_types::{QueryResponse, ReadStateResponse, RejectCode, RejectResponse, ReplyResponse, TransportCallResponse};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::app::App;
use crate::gateway::{self, whole, AnyBody, Gateway};
use crate::envelope::{Kind, Request, MAX_REQUEST_BYTES};
use crate::exec::{now_ns, Call, Command, ExecHandle, Outcome};
use crate::ingress::Status;
use crate::subnet::Subnet;
use crate::tree::{self, Effective};

/// How long a synchronous (v3/v4) call waits for its answer before answering 202.
const SYNC_CALL_WAIT: Duration = Duration::from_secs(10);
/// The interface version this front speaks.
const IC_API_VERSION: &str = "0.18.0";
/// An oversize body is read and dropped up to this size before the 413 (beyond it the
/// connection is closed).
const DRAIN_BYTES: u64 = 16 << 20;

type Body = AnyBody;

struct Ctx {
    subnet: Arc<Subnet>,
    exec: ExecHandle,
    gateway: Gateway,
    app: Option<App>,
}

/// Serves connections from `listener` until `stop` fires.
pub async fn serve(
    listener: std::net::TcpListener,
    subnet: Arc<Subnet>,
    exec: ExecHandle,
    app: Option<App>,
    mut stop: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let own = listener.local_addr()?;
    let ip = if own.ip().is_unspecified() { "127.0.0.1".to_string() } else { own.ip().to_string() };
    let gateway = Gateway::new(&format!("http://{ip}:{}", own.port()), subnet.root_key_der.clone())?;
    let ctx = Arc::new(Ctx { subnet, exec, gateway, app });
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                let mut closing = closing.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let ctx = ctx.clone();
                        async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = closing.changed() => {
                            // Answers the request in flight, if any, then closes.
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    let _ = closing_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    Ok(())
}

/// An HTTP answer before the request reached the host (status and a text message).
struct Refused(StatusCode, String);

impl Refused {
    fn bad(msg: impl Into<String>) -> Refused {
        Refused(StatusCode::BAD_REQUEST, msg.into())
    }
}

async fn handle(ctx: &Ctx, req: HttpRequest<Incoming>) -> Response<Body> {
    let for_gateway = if req.uri().path().starts_with("/api/") { None } else { gateway::canister_of(&req) };
    let answer = match for_gateway {
        Some(canister) if req.method() != Method::OPTIONS => browser(ctx, canister, req).await,
        _ => route(ctx, req).await,
    };
    let mut resp = match answer {
        Ok(r) => r,
        Err(Refused(status, msg)) => text(status, msg),
    };
    // Browsers (agent-js in a page) call the network from another origin.
    let h = resp.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    resp
}

async fn route(ctx: &Ctx, req: HttpRequest<Incoming>) -> Result<Response<Body>, Refused> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if req.method() == Method::OPTIONS {
        return Ok(Response::builder().status(StatusCode::NO_CONTENT).body(whole(Bytes::new())).expect("a valid response"));
    }
    if req.method() == Method::GET && parts.first() != Some(&"api") {
        if let Some((bytes, mime)) = ctx.app.as_ref().and_then(|a| a.file(req.uri().path())) {
            let r = Response::builder().status(StatusCode::OK).header(CONTENT_TYPE, mime).header("cache-control", "no-cache");
            return Ok(r.body(whole(bytes)).expect("a valid response"));
        }
    }
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["api", "v2", "status"]) => Ok(status(ctx)),
        (&Method::POST, ["api", v, scope @ ("canister" | "subnet"), id, endpoint]) => {
            let id = Principal::from_text(id).map_err(|e| Refused::bad(format!("`{id}` is not a principal: {e}")))?;
            let body = read_body(req).await?;
            match (*v, *scope, *endpoint) {
                ("v2", "canister", "call") => call(ctx, id, &body, false).await,
                ("v3" | "v4", "canister", "call") => call(ctx, id, &body, true).await,
                ("v2" | "v3", "canister", "query") => query(ctx, id, &body).await,
                ("v2" | "v3", "canister", "read_state") => read_state(ctx, Effective::Canister(id), &body).await,
                ("v2" | "v3", "subnet", "read_state") => read_state(ctx, Effective::Subnet(id), &body).await,
                _ => Err(Refused(StatusCode::NOT_FOUND, format!("{path} is not an endpoint of this network"))),
            }
        }
        (_, ["api", ..]) => Err(Refused(StatusCode::NOT_FOUND, format!("{} {path} is not an endpoint of this network", req.method()))),

        _ => Err(Refused(StatusCode::NOT_FOUND, format!("{path}: this is an Internet Computer network; its interface is under /api/, and canisters serve browsers at http://<canister-id>.localhost:<port>/… (or ?canisterId=<canister-id>)"))),
    }
}

/// A browser's request for `canister`, through the gateway.
async fn browser(ctx: &Ctx, canister: Principal, req: HttpRequest<Incoming>) -> Result<Response<Body>, Refused> {
    let (parts, body) = req.into_parts();
    let body = read_body(HttpRequest::from_parts(parts.clone(), body)).await?;
    let resp = ctx.gateway.handle(canister, HttpRequest::from_parts(parts, Bytes::from(body))).await;
    Ok(resp)
}

/// The body, refused with 413 past the 2 MiB limit (announced or actual). An oversize
/// body is still read (and dropped), up to [`DRAIN_BYTES`], so that the client is not
/// cut off while it writes and sees the 413.
async fn read_body(req: HttpRequest<Incoming>) -> Result<Vec<u8>, Refused> {
    let too_large = |n: u64| {
        Refused(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body has {n} bytes or more, more than the limit of {MAX_REQUEST_BYTES}"))
    };
    let announced = req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > DRAIN_BYTES) {
        return Err(too_large(announced.unwrap_or_default()));
    }
    let mut body = req.into_body();
    let mut out = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Refused::bad(format!("reading the request body failed: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > DRAIN_BYTES {
            break;
        }
        if seen <= MAX_REQUEST_BYTES as u64 {
            out.extend_from_slice(&data);
        }
    }
    if seen > MAX_REQUEST_BYTES as u64 {
        return Err(too_large(seen));
    }
    Ok(out)
}

fn cbor<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut out = Vec::new();
    let mut ser = serde_cbor::Serializer::new(&mut out);
    ser.self_describe().expect("writing to a Vec cannot fail");
    value.serialize(&mut ser).expect("a response serializes");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/cbor")
        .body(whole(out))
        .expect("a valid response")
}

fn text(status: StatusCode, msg: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(whole(msg))
        .expect("a valid response")
}

fn status(ctx: &Ctx) -> Response<Body> {
    #[derive(Serialize)]
    struct StatusReply<'a> {
        ic_api_version: &'a str,
        impl_version: &'a str,
        #[serde(with = "serde_bytes")]
        root_key: &'a [u8],
        replica_health_status: &'a str,
    }
    cbor(
        StatusCode::OK,
        &StatusReply {
            ic_api_version: IC_API_VERSION,
            impl_version: concat!("keepsake ic-net ", env!("CARGO_PKG_VERSION")),
            root_key: &ctx.subnet.root_key_der,
            replica_health_status: "healthy",
        },
    )
}

/// Parses and authenticates a request addressed to `target` (a canister, or `None` for
/// a subnet endpoint): envelope, expiry, signature. Nothing reaches the host before.
fn checked(ctx: &Ctx, body: &[u8], kind: Kind, target: Option<Principal>) -> Result<Request, Refused> {
    let req = Request::parse(body, kind).map_err(|e| Refused::bad(e.0))?;
    req.check_expiry(now_ns()).map_err(|e| Refused::bad(e.0))?;
    crate::auth::authenticate(&req, target, now_ns(), ctx.subnet.root_key_raw()).map_err(|e| Refused::bad(e.0))?;
    Ok(req)
}

fn in_subnet(ctx: &Ctx, id: Principal) -> Result<(), Refused> {
    if ctx.subnet.in_ranges(&id) {
        Ok(())
    } else {
        Err(Refused::bad(format!("canister {id} is not in the canister ranges of this network's subnet {}", ctx.subnet.id)))
    }
}

fn reject_response(r: &Reject) -> RejectResponse {
    RejectResponse {
        reject_code: RejectCode::try_from(u64::from(r.code)).unwrap_or(RejectCode::CanisterError),
        reject_message: r.message.clone(),
        error_code: r.error_code.map(|c| c.as_str().to_string()),
    }
}

async fn call(ctx: &Ctx, ecid: Principal, body: &[u8], sync: bool) -> Result<Response<Body>, Refused> {
    let req = checked(ctx, body, Kind::Call, Some(ecid))?;
    crate::effective::check(req.canister_id, &req.method_name, &req.arg, ecid, true).map_err(Refused::bad)?;
    in_subnet(ctx, ecid)?;
    let call = Call {
        request_id: req.request_id,
        sender: req.sender,
        effective: ecid,
        expiry: req.ingress_expiry,
        canister: req.canister_id,
        method: req.method_name,
        arg: req.arg,
    };
    let (acc_tx, acc_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    let accepted = (!sync).then_some(acc_tx);
    ctx.exec.send(Command::Call { call, accepted, done: done_tx }).map_err(|r| Refused(StatusCode::SERVICE_UNAVAILABLE, r.message))?;
    let gone = || Refused(StatusCode::SERVICE_UNAVAILABLE, "the network is shutting down".into());
    if !sync {
        return match acc_rx.await.map_err(|_| gone())? {
            Ok(()) => Ok(Response::builder().status(StatusCode::ACCEPTED).body(whole(Bytes::new())).expect("a valid response")),
            Err(r) => Ok(cbor(StatusCode::OK, &TransportCallResponse::NonReplicatedRejection(reject_response(&r)))),
        };
    }
    match tokio::time::timeout(SYNC_CALL_WAIT, done_rx).await {
        Err(_) => Ok(Response::builder().status(StatusCode::ACCEPTED).body(whole(Bytes::new())).expect("a valid response")),
        Ok(Err(_)) => Err(gone()),
        Ok(Ok(Outcome::Refused(r))) => Ok(cbor(StatusCode::OK, &TransportCallResponse::NonReplicatedRejection(reject_response(&r)))),
        Ok(Ok(Outcome::Status { status, time })) => {
            if status == Status::Received {
                return Ok(Response::builder().status(StatusCode::ACCEPTED).body(whole(Bytes::new())).expect("a valid response"));
            }
            let certificate = tree::call_certificate(&ctx.subnet, &req.request_id, &status, time);
            Ok(cbor(StatusCode::OK, &TransportCallResponse::Replied { certificate }))
        }
    }
}

async fn query(ctx: &Ctx, ecid: Principal, body: &[u8]) -> Result<Response<Body>, Refused> {
    let req = checked(ctx, body, Kind::Query, Some(ecid))?;
    crate::effective::check(req.canister_id, &req.method_name, &req.arg, ecid, false).map_err(Refused::bad)?;
    in_subnet(ctx, ecid)?;
    let (tx, rx) = oneshot::channel();
    let cmd = Command::Query { canister: req.canister_id, caller: req.sender, method: req.method_name, arg: req.arg, done: tx };
    ctx.exec.send(cmd).map_err(|r| Refused(StatusCode::SERVICE_UNAVAILABLE, r.message))?;
    let (reply, time) = rx.await.map_err(|_| Refused(StatusCode::SERVICE_UNAVAILABLE, "the network is shutting down".into()))?;
    let mut resp = match reply {
        Ok(arg) => QueryResponse::Replied { reply: ReplyResponse { arg }, signatures: Vec::new() },
        Err(r) => QueryResponse::Rejected { reject: reject_response(&r), signatures: Vec::new() },
    };
    let sig = tree::sign_query(&ctx.subnet, &resp, &req.request_id, time);
    match &mut resp {
        QueryResponse::Replied { signatures, .. } | QueryResponse::Rejected { signatures, .. } => signatures.push(sig),
    }
    Ok(cbor(StatusCode::OK, &resp))
}

async fn read_state(ctx: &Ctx, effective: Effective, body: &[u8]) -> Result<Response<Body>, Refused> {
    let target = match effective {
        Effective::Canister(id) => {
            in_subnet(ctx, id)?;
            Some(id)
        }
        Effective::Subnet(id) if id == ctx.subnet.id => None,
        Effective::Subnet(id) => return Err(Refused(StatusCode::NOT_FOUND, format!("subnet {id} is not this network's subnet ({})", ctx.subnet.id))),
    };
    let req = checked(ctx, body, Kind::ReadState, target)?;
    let refused = |r: tree::Refusal| Refused(StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST), r.message);
    let plan = tree::plan(&req.paths, effective).map_err(refused)?;
    let (tx, rx) = oneshot::channel();
    let cmd = Command::ReadState {
        canister: target.filter(|_| plan.canister),
        request: plan.request_id,
        metadata: plan.metadata.clone(),
        done: tx,
    };
    ctx.exec.send(cmd).map_err(|r| Refused(StatusCode::SERVICE_UNAVAILABLE, r.message))?;
    let snap = rx.await.map_err(|_| Refused(StatusCode::SERVICE_UNAVAILABLE, "the network is shutting down".into()))?;
    tree::authorize(&plan, &snap, req.sender, effective).map_err(refused)?;
    let certificate = tree::read_state_certificate(&ctx.subnet, &req.paths, &snap);
    Ok(cbor(StatusCode::OK, &ReadStateResponse { certificate }))
}
