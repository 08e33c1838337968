//! Poster frames of videos, taken with ffmpeg when it is installed (`KEEPSAKE_FFMPEG`
//! names another binary; its `ffprobe` sibling gives the duration). Without ffmpeg a
//! video is stored as it is and the caller says why it has no poster.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use image::DynamicImage;

/// A still of the video and its duration, when ffprobe could tell.
pub struct Frame {
    pub image: DynamicImage,
    pub duration_ms: Option<u64>,
}

fn ffmpeg() -> PathBuf {
    std::env::var_os("KEEPSAKE_FFMPEG").map_or_else(|| PathBuf::from("ffmpeg"), PathBuf::from)
}

fn ffprobe() -> PathBuf {
    let f = ffmpeg();
    match f.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join("ffprobe"),
        None => PathBuf::from("ffprobe"),
    }
}

/// The video's duration in milliseconds (`None` without ffprobe or for a stream that
/// does not say).
pub fn duration_ms(path: &Path) -> Option<u64> {
    let out = Command::new(ffprobe())
        .args(["-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output()
        .ok()?;
    let secs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| (secs * 1000.0).round() as u64)
}

/// A frame one second in (or a tenth of a shorter video), decoded.
pub fn poster(path: &Path) -> anyhow::Result<Frame> {
    let duration_ms = duration_ms(path);
    let at_ms = duration_ms.map_or(0, |d| (d / 10).min(1000));
    let out = Command::new(ffmpeg())
        .args(["-v", "error", "-ss", &format!("{}.{:03}", at_ms / 1000, at_ms % 1000), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("ffmpeg is not installed, so videos get no poster frame (install ffmpeg, or set KEEPSAKE_FFMPEG)")
        }
        Err(e) => return Err(e).context("running ffmpeg"),
    };
    if !out.status.success() || out.stdout.is_empty() {
        bail!("ffmpeg found no frame in {}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let image = image::load_from_memory(&out.stdout).context("decoding ffmpeg's frame")?;
    Ok(Frame { image, duration_ms })
}
