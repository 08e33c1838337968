//! Media types from file extensions, and the memory kind they imply.

use std::path::Path;

use backend::api::MemoryKind;

pub fn from_path(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "avif" => "image/avif",
        "tif" | "tiff" => "image/tiff",
        "bmp" => "image/bmp",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "wav" => "audio/wav",
        "ogg" | "oga" => "audio/ogg",
        "flac" => "audio/flac",
        "pdf" => "application/pdf",
        "txt" | "md" => "text/plain",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Images keepsake can decode to make derivatives.
pub fn is_derivable_image(mime: &str) -> bool {
    matches!(mime, "image/jpeg" | "image/png")
}

pub fn memory_kind(mime: &str) -> MemoryKind {
    match mime.split('/').next().unwrap_or("") {
        "image" => MemoryKind::Photo,
        "video" => MemoryKind::Video,
        "audio" => MemoryKind::Audio,
        "text" => MemoryKind::Document,
        _ if mime == "application/pdf" || mime.contains("document") || mime.contains("msword") => {
            MemoryKind::Document
        }
        _ => MemoryKind::Other,
    }
}

/// A file extension for a media type (for `get` without `-o`).
pub fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn kinds() {
        assert_eq!(from_path(Path::new("a/B.JPG")), "image/jpeg");
        assert_eq!(memory_kind("video/mp4"), MemoryKind::Video);
        assert_eq!(memory_kind("application/pdf"), MemoryKind::Document);
        assert_eq!(memory_kind("application/octet-stream"), MemoryKind::Other);
        assert!(is_derivable_image("image/png") && !is_derivable_image("image/heic"));
    }
}
