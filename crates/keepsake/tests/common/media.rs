//! Test media: photos with known colours, a video made by ffmpeg, and the project's
//! tool installers (scripts/tools.sh) for the browser tests.

use std::path::Path;
use std::process::Command;

/// Runs a tools.sh installer and returns what it prints last (a path).
pub fn tool(name: &str) -> String {
    let root = keepsake::embedded::repo_root();
    let out = Command::new("bash").arg("-c").arg(format!("source scripts/tools.sh && {name}")).current_dir(&root).output().expect("bash");
    assert!(out.status.success(), "{name} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap_or_default().to_string()
}

/// A 3000×2000 JPEG of four solid quadrants (top-left, top-right, bottom-left, bottom-right).
pub fn quadrant_photo(path: &Path, q: [[u8; 3]; 4]) {
    let (w, h) = (3000u32, 2000u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(q[usize::from(y >= h / 2) * 2 + usize::from(x >= w / 2)]));
    img.save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

/// `seconds` of 720p H.264 at a constant 14 Mbit/s (~1.75 MB a second), the index first
/// so that a player can seek before the whole file is there.
pub fn video(ffmpeg: &str, path: &Path, seconds: u32) {
    let made = Command::new(ffmpeg)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-t", &seconds.to_string(), "-c:v", "libx264"])
        .args(["-preset", "ultrafast", "-b:v", "14M", "-minrate", "14M", "-maxrate", "14M", "-bufsize", "14M"])
        .args(["-x264-params", "nal-hrd=cbr", "-g", "30", "-pix_fmt", "yuv420p", "-movflags", "+faststart"])
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "ffmpeg could not make the test video");
}
