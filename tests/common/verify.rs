//! Checks an `http_request` response as the HTTP gateway does: DFINITY's
//! `ic-response-verification`, certification v2 only, against a root key.
#![allow(dead_code)]

use backend::api::{HttpRequest, HttpResponse};

/// `Ok` if the response verifies and what was verified is what was answered.
pub fn verify(root_key_der: &[u8], canister_id: &[u8], req: &HttpRequest, r: &HttpResponse, now_ns: u64) -> Result<(), String> {
    let request = ic_http_certification::HttpRequest::get(req.url.clone()).with_headers(req.headers.clone()).build();
    let response = ic_http_certification::HttpResponse::builder()
        .with_status_code(ic_http_certification::StatusCode::from_u16(r.status_code).map_err(|e| e.to_string())?)
        .with_headers(r.headers.clone())
        .with_body(r.body.to_vec())
        .build();
    let info = ic_response_verification::verify_request_response_pair(
        request,
        response,
        canister_id,
        now_ns.into(),
        300_000_000_000,
        root_key_der,
        2,
    )
    .map_err(|e| e.to_string())?;
    let v = info.response.ok_or_else(|| "no certified response".to_string())?;
    if info.verification_version != 2 || v.status_code != Some(r.status_code) || v.body != r.body.as_slice() {
        return Err(format!("verified {v:?} differs from the response"));
    }
    Ok(())
}

pub fn header<'a>(r: &'a HttpResponse, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `(first, last, total)` of a `Content-Range: bytes a-b/n` header.
pub fn content_range(r: &HttpResponse) -> (u64, u64, u64) {
    let v = header(r, "content-range").expect("content-range");
    let (range, total) = v.strip_prefix("bytes ").expect("bytes unit").split_once('/').expect("total");
    let (a, b) = range.split_once('-').expect("a-b");
    (a.parse().unwrap(), b.parse().unwrap(), total.parse().unwrap())
}

pub fn get(url: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        body: serde_bytes::ByteBuf::new(),
        certificate_version: Some(2),
    }
}
