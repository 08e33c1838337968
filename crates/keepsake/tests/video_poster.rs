//! `upload --derivatives` of a video: with ffmpeg (installed by scripts/tools.sh) the
//! memory gets a poster frame from the video itself, its thumbnail and an inline
//! placeholder, and the original its duration, so a gallery shows it like a photo;
//! without ffmpeg the video is stored alone and the CLI says why.

mod common;

use std::process::Command;

use common::{asset_kinds, keepsake, ok};

#[test]
fn videos_get_a_poster_frame_with_ffmpeg_and_a_reason_without() {
    let root = keepsake::embedded::repo_root();
    let out = Command::new("bash").arg("-c").arg("source scripts/tools.sh && ensure_ffmpeg").current_dir(&root).output().unwrap();
    assert!(out.status.success(), "installing ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    let ffmpeg = String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap().to_string();

    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let made = Command::new(&ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .arg(dir.join("clip.mp4"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::copy(dir.join("clip.mp4"), dir.join("again.mp4")).unwrap();

    let v = ok(dir, &["upload", "--derivatives", "clip.mp4", "--json"]);
    let f = &v["files"][0];
    assert_eq!(asset_kinds(f), ["Original", "Poster", "Thumbnail", "Placeholder"], "{f}");
    let poster = &f["assets"][1];
    assert_eq!((poster["width"].as_u64(), poster["height"].as_u64()), (Some(640), Some(360)), "{poster}");
    let m = f["memory_id"].as_u64().unwrap().to_string();
    ok(dir, &["get", &m, "--asset", "poster", "-o", "poster.jpg", "--json"]);
    let img = image::open(dir.join("poster.jpg")).unwrap();
    assert_eq!((img.width(), img.height()), (640, 360), "the poster is a frame of the video");
    ok(dir, &["get", &m, "--asset", "thumbnail", "-o", "thumb.jpg", "--json"]);
    assert_eq!(image::open(dir.join("thumb.jpg")).unwrap().width(), 512);
    let shown = ok(dir, &["ls", "--json"]).to_string();
    assert!(shown.contains("\"duration_ms\":3000"), "the original's duration: {shown}");

    // Without ffmpeg: stored alone, with the reason.
    let r = keepsake(dir, &["upload", "--derivatives", "again.mp4", "--force", "--json"], &[("KEEPSAKE_FFMPEG", "/nonexistent/ffmpeg")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(asset_kinds(&v["files"][0]), ["Original"]);
    assert!(v.to_string().contains("ffmpeg is not installed"), "{v}");
}
