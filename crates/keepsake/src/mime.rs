//! Media types: what a file really is (its first bytes, sniffed by `infer`), else what
//! its extension says (`mime_guess`), and the memory kind a type implies.

use std::io::Read;
use std::path::Path;

use backend::api::MemoryKind;

/// Bytes of a file's head that content sniffing looks at.
const SNIFF_BYTES: u64 = 8192;

/// The media type of `bytes` (the head of a file is enough) named `name`: the content's
/// own signature when it has one (a `.jpg` that is really a PNG or a HEIC is that), else
/// the type of the name's extension, else `application/octet-stream`.
pub fn from_bytes(bytes: &[u8], name: &Path) -> &'static str {
    infer::get(bytes)
        .map(|t| t.mime_type())
        .or_else(|| mime_guess::from_path(name).first_raw())
        .unwrap_or("application/octet-stream")
}

/// The media type of the file at `path` (see [`from_bytes`]); an unreadable file is
/// typed by its name alone.
pub fn from_path(path: &Path) -> &'static str {
    let mut head = Vec::with_capacity(SNIFF_BYTES as usize);
    let _ = std::fs::File::open(path).and_then(|f| f.take(SNIFF_BYTES).read_to_end(&mut head));
    from_bytes(&head, path)
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

/// A file extension for a media type (names of downloads and exported files): the
/// usual one where several exist, else the first `mime_guess` knows, else `bin`.
pub fn extension(mime: &str) -> &'static str {
    let usual = match mime {
        "image/jpeg" => Some("jpg"),
        "video/quicktime" => Some("mov"),
        "text/plain" => Some("txt"),
        "audio/mpeg" => Some("mp3"),
        "image/tiff" => Some("tif"),
        _ => None,
    };
    usual
        .or_else(|| {
            if mime.contains('*') {
                return None; // a wildcard would list every extension
            }
            let exts = mime_guess::get_mime_extensions_str(mime)?;
            let sub = mime.split('/').nth(1).unwrap_or("");
            // The subtype itself when it is an extension (png, mp4, webp, pdf …).
            exts.iter().find(|e| **e == sub).or(exts.first()).copied()
        })
        .unwrap_or("bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(4, 3, image::Rgb([10, 200, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// The head of an iPhone HEIC: an ISO-BMFF `ftyp` box with major brand `heic`.
    fn heic() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 24];
        b.extend_from_slice(b"ftypheic");
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(b"mif1heic");
        b.extend_from_slice(&[0u8; 64]);
        b
    }

    #[test]
    fn mislabelled_files_get_their_real_type() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, Vec<u8>, &str); 6] = [
            ("really-png.jpg", png(), "image/png"),
            ("really-heic.jpg", heic(), "image/heif"),
            (
                "photo.png",
                crate::derive::sample_photo(8, 8, 1),
                "image/jpeg",
            ),
            // No signature: the extension decides.
            ("clip.mp4", vec![7u8; 300], "video/mp4"),
            ("notes.txt", b"hello".to_vec(), "text/plain"),
            ("blob.unknownext", vec![1, 2, 3], "application/octet-stream"),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(from_path(&p), want, "{name}");
        }
        // A missing file is typed by its name.
        assert_eq!(from_path(&dir.path().join("gone.MOV")), "video/quicktime");
    }

    #[test]
    fn kinds_and_extensions() {
        assert_eq!(memory_kind("video/mp4"), MemoryKind::Video);
        assert_eq!(memory_kind("image/heif"), MemoryKind::Photo);
        assert_eq!(memory_kind("application/pdf"), MemoryKind::Document);
        assert_eq!(memory_kind("application/octet-stream"), MemoryKind::Other);
        assert!(is_derivable_image("image/png") && !is_derivable_image("image/heif"));
        for (m, e) in [
            ("image/jpeg", "jpg"),
            ("image/png", "png"),
            ("image/heif", "heif"),
            ("video/mp4", "mp4"),
            ("video/quicktime", "mov"),
            ("application/pdf", "pdf"),
            ("text/plain", "txt"),
            ("application/x-keepsake-nothing", "bin"),
            ("*/*", "bin"),
            ("not a type", "bin"),
        ] {
            assert_eq!(extension(m), e, "{m}");
        }
    }
}
