//! A real browser through `keepsake serve`'s HTTP gateway: Debian's Chromium, headless,
//! driven by puppeteer-core (tests/browser/gallery.mjs; installed by scripts/tools.sh).
//! Photos and a video of more than 100 MB (made by ffmpeg now) are uploaded with the CLI
//! and made public; the page shows each photo's thumbnail and display image with the
//! photo's colours, and the video seeks to 25 %, 50 % and 90 % and plays on. The
//! gateway's log shows the video went out as verified 206 parts, nothing refused.

mod common;

use std::process::Command;

use common::media::{quadrant_photo, tool, video};
use common::serve::Serve;

/// Four solid quadrants (top-left, top-right, bottom-left, bottom-right).
const QUADRANTS: [[[u8; 3]; 4]; 2] = [
    [[220, 30, 30], [30, 200, 40], [30, 60, 220], [240, 220, 40]],
    [[250, 250, 250], [20, 20, 20], [200, 40, 200], [40, 200, 200]],
];

#[test]
fn chromium_shows_photos_and_seeks_a_video_through_the_gateway() {
    let chromium = tool("ensure_chromium");
    let ffmpeg = tool("ensure_ffmpeg");
    let js = tool("ensure_browser_js");

    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    for (i, q) in QUADRANTS.iter().enumerate() {
        quadrant_photo(&dir.join(format!("photo{i}.jpg")), *q);
    }
    video(&ffmpeg, &dir.join("video.mp4"), 60);
    let video_len = std::fs::metadata(dir.join("video.mp4")).unwrap().len();
    assert!(video_len > 100_000_000, "the video has {video_len} bytes");

    let log = dir.join("serve.log");
    let net = Serve::start_logged(&dir.join("state"), &log);
    let up = net.ok(dir, &["upload", "--derivatives", "photo0.jpg", "photo1.jpg"]);
    let photos: Vec<u64> = up["files"].as_array().unwrap().iter().map(|f| f["memory_id"].as_u64().unwrap()).collect();
    let cap = up["files"][0]["capsule_id"].as_u64().unwrap().to_string();
    let video = net.ok(dir, &["upload", "video.mp4", "--capsule", &cap])["files"][0]["memory_id"].as_u64().unwrap();
    for m in photos.iter().chain([&video]) {
        net.ok(dir, &["public", &m.to_string(), "on"]);
    }

    let port = url::Url::parse(&net.url).unwrap().port().unwrap();
    let origin = format!("http://{}.localhost:{port}", net.canister);
    let spec = serde_json::json!({
        "photos": photos.iter().zip(QUADRANTS).map(|(m, q)| serde_json::json!({ "memory": m, "quadrants": q })).collect::<Vec<_>>(),
        "video": { "memory": video, "seeks": [0.25, 0.5, 0.9] },
    });
    let t = std::time::Instant::now();
    let out = Command::new("node").arg("gallery.mjs").args([&chromium, &origin, &spec.to_string()]).current_dir(&js).output().expect("node 20 on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}\nserve's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
    println!("browser run {:.1} s: {v}", t.elapsed().as_secs_f64());
    assert_eq!(v["failed"], serde_json::json!([]), "requests that failed in the page");

    // Photos: decoded at the derivative sizes, each quadrant its colour (JPEG tolerance).
    for p in v["photos"].as_array().unwrap() {
        let long_side = p["width"].as_u64().unwrap().max(p["height"].as_u64().unwrap());
        assert_eq!(long_side, if p["kind"] == "thumbnail" { 512 } else { 2048 }, "{p}");
        let want = QUADRANTS[p["photo"].as_u64().unwrap() as usize];
        for (got, want) in p["quadrants"].as_array().unwrap().iter().zip(want) {
            let got: Vec<i64> = got.as_array().unwrap().iter().map(|c| c.as_i64().unwrap()).collect();
            assert!(got.iter().zip(want).all(|(g, w)| (g - i64::from(w)).abs() <= 24), "{p}: {got:?} is not {want:?}");
        }
    }
    // The video: every seek lands where asked, with a frame to show, and it plays on.
    let pb = &v["playback"];
    let duration = pb["duration"].as_f64().unwrap();
    assert!((duration - 60.0).abs() < 0.5, "{pb}");
    for s in pb["seeks"].as_array().unwrap() {
        let (target, at) = (s["target"].as_f64().unwrap(), s["currentTime"].as_f64().unwrap());
        assert!((at - target).abs() < 0.05 && s["readyState"].as_u64().unwrap() >= 2, "seek {s}");
        println!("seek to {:>4.0} %: seeked after {:>6.1} ms, first frame after {:>6.1} ms", s["fraction"].as_f64().unwrap() * 100.0, s["seekedMs"].as_f64().unwrap(), s["frameMs"].as_f64().unwrap());
    }
    assert!(pb["playedSeconds"].as_f64().unwrap() > 0.5, "it plays on after the seeks: {pb}");
    net.interrupt();

    // The gateway's log: the video went out in verified 206 parts; nothing was refused.
    let log = std::fs::read_to_string(&log).unwrap();
    if std::env::var_os("BROWSER_LOG").is_some() { println!("{log}"); }
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("gateway ")).collect();
    let video_path = format!(" /m/{video}/original ");
    let parts = lines.iter().filter(|l| l.starts_with("gateway 206 verified GET") && l.contains(&video_path)).count();
    println!("gateway: {} requests, {parts} verified 206 parts of the video", lines.len());
    assert!(parts >= 3, "{}", lines.join("\n"));
    assert!(lines.iter().all(|l| l.split(' ').nth(2) == Some("verified")), "{}", lines.join("\n"));
}
