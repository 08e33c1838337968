//! Real image derivatives: display (2048 px long side), thumbnail (512 px) and an
//! inline placeholder (32 px, ≤ 32 KiB), decoded from the actual image (EXIF
//! orientation applied) and encoded as JPEG.

use std::io::Cursor;
use std::path::Path;

use anyhow::Context;
use backend::api::AssetKind;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

pub const DISPLAY_PX: u32 = 2048;
pub const THUMBNAIL_PX: u32 = 512;
pub const PLACEHOLDER_PX: u32 = 32;
/// The canister's limit for inline assets.
pub const MAX_INLINE_BYTES: usize = 32 * 1024;

/// One encoded rendition.
#[derive(Clone, Debug)]
pub struct Rendition {
    pub kind: AssetKind,
    pub bytes: Vec<u8>,
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

/// The derivatives of one image, plus the (oriented) size of the original.
#[derive(Clone, Debug)]
pub struct Derivatives {
    pub width: u32,
    pub height: u32,
    pub display: Rendition,
    pub thumbnail: Rendition,
    pub placeholder: Rendition,
}

/// Decodes an image file (JPEG or PNG) with its EXIF orientation applied.
pub fn decode(path: &Path) -> anyhow::Result<DynamicImage> {
    let reader = ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut decoder = reader
        .into_decoder()
        .with_context(|| format!("{} is not a supported image", path.display()))?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)
        .with_context(|| format!("decoding {}", path.display()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Scales so that the long side is at most `px` (never enlarges).
fn fit(img: &DynamicImage, px: u32, filter: FilterType) -> DynamicImage {
    if img.width().max(img.height()) <= px {
        img.clone()
    } else {
        img.resize(px, px, filter)
    }
}

fn jpeg(img: &DynamicImage, quality: u8) -> anyhow::Result<Vec<u8>> {
    let rgb = img.to_rgb8();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .context("encoding JPEG")?;
    Ok(out)
}

fn rendition(kind: AssetKind, img: &DynamicImage, quality: u8) -> anyhow::Result<Rendition> {
    Ok(Rendition {
        kind,
        bytes: jpeg(img, quality)?,
        mime: "image/jpeg",
        width: img.width(),
        height: img.height(),
    })
}

/// Makes the three derivatives of a decoded image.
pub fn derive(img: &DynamicImage) -> anyhow::Result<Derivatives> {
    let display = fit(img, DISPLAY_PX, FilterType::CatmullRom);
    let thumb = fit(&display, THUMBNAIL_PX, FilterType::CatmullRom);
    let tiny = fit(&thumb, PLACEHOLDER_PX, FilterType::Triangle);
    let mut placeholder = rendition(AssetKind::Placeholder, &tiny, 70)?;
    let mut q = 70;
    while placeholder.bytes.len() > MAX_INLINE_BYTES && q > 10 {
        q -= 20;
        placeholder = rendition(AssetKind::Placeholder, &tiny, q)?;
    }
    anyhow::ensure!(
        placeholder.bytes.len() <= MAX_INLINE_BYTES,
        "placeholder larger than 32 KiB"
    );
    Ok(Derivatives {
        width: img.width(),
        height: img.height(),
        display: rendition(AssetKind::Display, &display, 85)?,
        thumbnail: rendition(AssetKind::Thumbnail, &thumb, 80)?,
        placeholder,
    })
}

pub fn derive_file(path: &Path) -> anyhow::Result<Derivatives> {
    derive(&decode(path)?)
}

/// The pixel size of an image file (oriented), without keeping it decoded.
pub fn dimensions(path: &Path) -> Option<(u32, u32)> {
    let reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    let mut dec = reader.into_decoder().ok()?;
    let (w, h) = dec.dimensions();
    let swap = matches!(
        dec.orientation().ok(),
        Some(image::metadata::Orientation::Rotate90)
            | Some(image::metadata::Orientation::Rotate270)
            | Some(image::metadata::Orientation::Rotate90FlipH)
            | Some(image::metadata::Orientation::Rotate270FlipH)
    );
    Some(if swap { (h, w) } else { (w, h) })
}

/// A deterministic, photo-like JPEG (sky gradient, sun, hills, texture noise) for demos
/// and tests.
pub fn sample_photo(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 21) as i32 - 10
    };
    let (w, h) = (width as f32, height as f32);
    let (sx, sy, sr) = (w * 0.7, h * 0.28, h.min(w) * 0.09);
    let img = RgbImage::from_fn(width, height, |px, py| {
        let (fx, fy) = (px as f32, py as f32);
        let hill = h * 0.62 + (fx / w * 9.0).sin() * h * 0.06 + (fx / w * 23.0).cos() * h * 0.02;
        let (r, g, b) = if fy > hill {
            let t = (fy - hill) / (h - hill + 1.0);
            (40.0 + 60.0 * t, 110.0 - 40.0 * t, 40.0 + 10.0 * t)
        } else if (fx - sx).powi(2) + (fy - sy).powi(2) < sr * sr {
            (255.0, 214.0, 90.0)
        } else {
            let t = fy / hill;
            (70.0 + 150.0 * t, 130.0 + 90.0 * t, 230.0 - 20.0 * t)
        };
        let n = noise();
        let c = |v: f32| (v as i32 + n).clamp(0, 255) as u8;
        image::Rgb([c(r), c(g), c(b)])
    });
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode sample photo");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_have_the_right_sizes() {
        let jpg = sample_photo(3000, 2000, 1);
        let img = image::load_from_memory(&jpg).unwrap();
        let d = derive(&img).unwrap();
        assert_eq!((d.width, d.height), (3000, 2000));
        assert_eq!((d.display.width, d.display.height), (2048, 1365));
        assert_eq!((d.thumbnail.width, d.thumbnail.height), (512, 341));
        assert_eq!(d.placeholder.width, 32);
        assert!(d.placeholder.bytes.len() <= MAX_INLINE_BYTES);
        for r in [&d.display, &d.thumbnail, &d.placeholder] {
            let back = image::load_from_memory(&r.bytes).unwrap();
            assert_eq!((back.width(), back.height()), (r.width, r.height));
        }
        // Small images are never enlarged.
        let small = image::load_from_memory(&sample_photo(300, 200, 2)).unwrap();
        let d = derive(&small).unwrap();
        assert_eq!(
            (d.display.width, d.thumbnail.width, d.placeholder.width),
            (300, 300, 32)
        );
    }
}
