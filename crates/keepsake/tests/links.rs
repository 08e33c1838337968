//! Sharing through the binary, embedded: what `keepsake link` prints is a URL the
//! canister's `http_request` serves (as a gateway asks for it: anonymously) until the
//! link expires or the capsule's link key is rotated; `keepsake public on|off` opens and
//! closes a memory's URLs to anyone.

mod common;

use std::path::Path;
use std::time::Duration;

use backend::api::{HttpRequest, HttpResponse};
use candid::Principal;
use common::{keepsake, ok, random_file};
use keepsake::embedded::EmbeddedTransport;
use keepsake::Client;
use serde_bytes::ByteBuf;
use serde_json::Value;

const GATEWAY: &str = "http://gateway.test:8080";

/// Asks the embedded canister in `d/state` for `urls` as an HTTP gateway does (the
/// anonymous caller, `url` = path and query), after `advance` of canister time. Due
/// timers run first (housekeeping; the certification tree itself is in stable memory).
fn fetch(d: &Path, urls: &[&str], advance: Duration) -> Vec<HttpResponse> {
    let t =
        EmbeddedTransport::open(&d.join("state"), common::wasm(), Principal::anonymous()).unwrap();
    t.advance_time(advance);
    let c = Client::new(Box::new(t));
    let rt = common::rt();
    urls.iter()
        .map(|url| {
            let req = HttpRequest {
                method: "GET".into(),
                url: url.to_string(),
                headers: vec![],
                body: ByteBuf::new(),
                certificate_version: Some(2),
            };
            rt.block_on(c.http_request(&req)).unwrap()
        })
        .collect()
    // Dropped without a checkpoint: the advanced time is not kept.
}

fn status(r: &[HttpResponse]) -> Vec<u16> {
    r.iter().map(|r| r.status_code).collect()
}

/// What a gateway forwards of a full URL: its path and query.
fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

fn upload(d: &Path, file: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["upload", file, "--json"];
    args.extend_from_slice(extra);
    let v = ok(d, &args);
    let f = &v["files"][0];
    (
        f["memory_id"].as_u64().unwrap().to_string(),
        f["capsule_id"].as_u64().unwrap().to_string(),
    )
}

#[test]
fn links_open_one_asset_until_they_expire_or_the_key_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let photo = keepsake::derive::sample_photo(900, 600, 7);
    std::fs::write(d.join("photo.jpg"), &photo).unwrap();
    let (m, cap) = upload(d, "photo.jpg", &["--derivatives"]);
    ok(
        d,
        &[
            "get",
            &m,
            "--asset",
            "thumbnail",
            "-o",
            "thumb.jpg",
            "--json",
        ],
    );
    let thumb = std::fs::read(d.join("thumb.jpg")).unwrap();

    // A two-minute link to the original, printed as the gateway's URL.
    let v = ok(
        d,
        &["link", &m, "--ttl", "2m", "--gateway", GATEWAY, "--json"],
    )["link"]
        .clone();
    let url = v["url"].as_str().unwrap();
    let path = v["path"].as_str().unwrap();
    assert_eq!(url, format!("{GATEWAY}{path}"));
    assert!(
        path.starts_with(&format!("/m/{m}/original?token=")),
        "{path}"
    );
    assert_eq!(v["asset"], "original");
    let original = path_of(url);
    assert_eq!(original, path);
    // One character of the MAC changed.
    let dot = original.find('.').unwrap();
    let flip = if &original[dot + 1..dot + 2] == "A" {
        "B"
    } else {
        "A"
    };
    let tampered = format!("{}{flip}{}", &original[..=dot], &original[dot + 2..]);
    let token = original.split_once('?').unwrap().1;
    let other_kind = format!("/m/{m}/thumbnail?{token}");

    // Embedded without --gateway: the path alone, and where it will be served.
    let r = keepsake(d, &["link", &m, "--asset", "thumbnail"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let thumb_link = r.stdout.trim().to_string();
    assert!(
        thumb_link.starts_with(&format!("/m/{m}/thumbnail?token=")),
        "{thumb_link}"
    );
    assert!(r.stderr.contains("keepsake serve"), "{}", r.stderr);

    let no_token = format!("/m/{m}/original");
    let got = fetch(
        d,
        &[&original, &thumb_link, &no_token, &tampered, &other_kind],
        Duration::ZERO,
    );
    assert_eq!(status(&got), [200, 200, 403, 403, 403]);
    assert_eq!(got[0].body.as_slice(), photo, "the original's bytes");
    assert_eq!(got[1].body.as_slice(), thumb, "the thumbnail's bytes");

    // Two minutes later the first link is dead; the one-day link still works.
    let later = fetch(d, &[&original, &thumb_link], Duration::from_secs(121));
    assert_eq!(status(&later), [403, 200]);

    // Rotating the capsule's key revokes every link; new links work.
    let v = ok(d, &["capsule", "rotate-link-key", &cap, "--json"])["rotated"].clone();
    assert_eq!(v["key_version"], 1);
    assert_eq!(v["capsule_id"].as_u64().unwrap().to_string(), cap);
    let fresh = ok(d, &["link", &m, "--asset", "thumb", "--json"])["link"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, thumb_link);
    let after = fetch(d, &[&thumb_link, &fresh], Duration::ZERO);
    assert_eq!(status(&after), [403, 200]);
    assert_eq!(after[1].body.as_slice(), thumb);

    // Refused before any call: out-of-range lifetimes and unknown assets.
    for (args, says) in [
        (vec!["link", &m, "--ttl", "31d"], "30 days"),
        (vec!["link", &m, "--ttl", "soon"], "invalid duration"),
        (vec!["link", &m, "--asset", "poster"], "no Poster asset"),
        (vec!["link", "999"], "memory 999 does not exist"),
    ] {
        let r = keepsake(d, &args, &[]);
        assert_ne!(r.code, 0, "{args:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn public_opens_a_memory_to_anyone_and_off_closes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    random_file(&d.join("clip.bin"), 150_000, 41);
    let bytes = std::fs::read(d.join("clip.bin")).unwrap();
    let (m, _) = upload(d, "clip.bin", &[]);
    let path = format!("/m/{m}/original");
    assert_eq!(status(&fetch(d, &[&path], Duration::ZERO)), [403]);

    let v = ok(d, &["public", &m, "on", "--json"])["public"].clone();
    assert_eq!(v["public"], true);
    assert_eq!(v["assets"][0]["path"], path.as_str());
    assert_eq!(v["assets"][0]["url"], Value::Null, "embedded: no gateway");
    let got = fetch(d, &[&path], Duration::ZERO);
    assert_eq!(status(&got), [200]);
    assert_eq!(got[0].body.as_slice(), bytes);

    let r = keepsake(d, &["public", &m, "off", "--gateway", GATEWAY], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("is private"), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("{GATEWAY}{path}")),
        "{}",
        r.stdout
    );
    assert_eq!(status(&fetch(d, &[&path], Duration::ZERO)), [403]);
}
