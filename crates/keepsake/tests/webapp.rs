//! The web app (`clients/web`, served by `keepsake serve --app`) in Debian's Chromium,
//! headless (tests/browser/webapp.mjs, puppeteer-core): three photos and a 100 MB video
//! picked in its file input; the gallery shows the photos' thumbnails (served by the
//! canister through the gateway); a reload in the middle of the video's upload, then the
//! same file picked again, sends only the chunks the canister lacked at the reload
//! (counted by the canister: `uploads_list`); the video reads back with its SHA-256.

mod common;

use std::process::Command;

use common::media::{quadrant_photo, tool, video};
use common::serve::Serve;
use sha2::Digest;

#[test]
fn the_web_app_uploads_resumes_after_a_reload_and_shows_the_gallery() {
    let chromium = tool("ensure_chromium");
    let ffmpeg = tool("ensure_ffmpeg");
    let js = tool("ensure_browser_js");
    let app = tool("ensure_web_app");

    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let colours = [[200, 40, 40], [40, 200, 40], [40, 40, 200], [220, 220, 40]];
    let mut files = Vec::new();
    for i in 0..3u8 {
        let p = dir.join(format!("photo{i}.jpg"));
        quadrant_photo(&p, colours.map(|c: [u8; 3]| c.map(|x| x.saturating_add(i * 10))));
        files.push(p);
    }
    let clip = dir.join("video.mp4");
    video(&ffmpeg, &clip, 58);
    let video_bytes = std::fs::read(&clip).unwrap();
    assert!(video_bytes.len() > 100_000_000, "{} bytes", video_bytes.len());
    files.push(clip);

    let net = Serve::start_with(&dir.join("state"), &["--app", &app]);
    let t = std::time::Instant::now();
    let out = Command::new("node")
        .arg("webapp.mjs")
        .arg(&chromium)
        .arg(&net.url)
        .args(&files)
        .current_dir(&js)
        .output()
        .expect("node 20 on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the web app run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    println!("web app run {:.1} s: {v}", t.elapsed().as_secs_f64());

    assert_eq!(v["errors"], serde_json::json!([]));
    assert_eq!(v["samePrincipal"], true, "the key kept in IndexedDB signs in again after the reload");
    for t in v["thumbs"].as_array().unwrap() {
        assert_eq!(t[0].as_u64().unwrap().max(t[1].as_u64().unwrap()), 512, "a thumbnail made in the browser: {t}");
    }
    let r = &v["result"];
    let (sent, count) = (r["chunksSent"].as_u64().unwrap(), r["chunkCount"].as_u64().unwrap());
    // What the canister held: read with uploads_list after the reload, and again in the
    // session uploads_begin returned to the resumed upload (a put already in flight at
    // the reload may land in between).
    let (listed, held) = (v["held"]["received"].as_u64().unwrap(), r["chunksHeld"].as_u64().unwrap());
    assert!(listed > 0 && listed <= held && held < count, "{v}");
    assert_eq!(r["resumed"], true);
    assert_eq!(sent, count - held, "after the reload only the {} missing chunks were sent", count - held);
    let sha: String = sha2::Sha256::digest(&video_bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v["readBack"]["sha256"], sha.as_str());
    assert_eq!(v["readBack"]["size"].as_u64(), Some(video_bytes.len() as u64));
    println!(
        "photos: {:.1} s; video {:.0} MB: {:.1} s with the reload, {held} of {count} chunks held at the reload, {sent} sent after",
        v["photoSeconds"].as_f64().unwrap(),
        video_bytes.len() as f64 / 1e6,
        v["videoSeconds"].as_f64().unwrap()
    );
    // The same video by the CLI on the same network, for the throughput beside the browser's.
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    let t = std::time::Instant::now();
    net.ok(dir, &["upload", files[3].to_str().unwrap()]);
    let cli = t.elapsed().as_secs_f64();
    let browser = r["bytesSent"].as_f64().unwrap() / r["seconds"].as_f64().unwrap();
    println!(
        "throughput, 8 chunks in flight each: browser {:.1} MB/s ({:.0} MB after the reload), CLI {:.1} MB/s ({:.0} MB)",
        browser / 1e6,
        r["bytesSent"].as_f64().unwrap() / 1e6,
        video_bytes.len() as f64 / cli / 1e6,
        video_bytes.len() as f64 / 1e6
    );
    net.interrupt();
}
