//! The source image of a task: downloading an `image_url` and checking and decoding the PNG, with
//! the task states the service reports when that fails.
//!
//! Like the real service, these checks run inside the task, not in the create request. They are
//! the emulator's own reading of the spec, written apart from `backdrop_core`'s validator (only
//! the spec's numbers come from `backdrop_core::spec`): decoding is the `image` crate's, the
//! rules are written here. So when the client's local check and the emulator disagree, the tests
//! that run one against the other find it instead of agreeing by construction.
//!
//! | problem | state |
//! | --- | --- |
//! | the `image_url` cannot be fetched (connection error, timeout, non-2xx answer) | -3 |
//! | the `image_url` body is over [`spec::MAX_IMAGE_URL_BYTES`] | -5 |
//! | the bytes are not a PNG the `image` crate decodes: another format, a damaged header, a chunk whose CRC is wrong, image data cut short or damaged | -7 |
//! | the PNG's sides are outside 256–4096 px, or it has neither an alpha channel nor a `tRNS` chunk | -14 |
//! | no pixel is fully transparent (alpha 0): the background was not removed | -14 |
//! | every pixel is fully transparent: there is no foreground to put on a background | -14 |
//!
//! The -14 rows are this emulator's choice: the spec says the input "must be a transparent PNG
//! with only the foreground, with resolution from 256x256 to 4096x4096" without naming the state,
//! and -14 ("the input image content does not meet the requirements") is the closest documented
//! one. The -7 row is the `image` crate's judgement of "corrupted" (a file without `IEND` is
//! one). It accepts some files the client's full check refuses — bytes after `IEND`, a wrong
//! Adler-32 checksum, compressed data after the end of the zlib stream (each pinned by a test
//! below) — as lenient decoders (libpng among them) do.

use std::io::Cursor;

use backdrop_core::{TaskState, spec};
use bytes::Bytes;
use image::codecs::png::PngDecoder;
use image::{DynamicImage, ImageDecoder, Limits, RgbaImage};

use crate::render;

/// Why a source image cannot be used, as a task state and a detail text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputFailure {
    pub(crate) state: TaskState,
    pub(crate) detail: String,
}

impl InputFailure {
    fn new(state: TaskState, detail: impl Into<String>) -> Self {
        InputFailure {
            state,
            detail: detail.into(),
        }
    }
}

/// Downloads an `image_url` (the client's timeout applies), refusing bodies over
/// [`spec::MAX_IMAGE_URL_BYTES`] from their `Content-Length` or while streaming.
pub(crate) async fn fetch(client: &reqwest::Client, url: &str) -> Result<Bytes, InputFailure> {
    let download_failed = |error: reqwest::Error| {
        InputFailure::new(
            TaskState::ImageUrlDownloadFailed,
            format!("failed to download image_url: {}", error.without_url()),
        )
    };
    let too_large = || {
        InputFailure::new(
            TaskState::ImageUrlTooLarge,
            format!(
                "the image_url image exceeds the size limit ({} bytes)",
                spec::MAX_IMAGE_URL_BYTES
            ),
        )
    };
    let mut response = client.get(url).send().await.map_err(download_failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(InputFailure::new(
            TaskState::ImageUrlDownloadFailed,
            format!("failed to download image_url: it answered HTTP {status}"),
        ));
    }
    if response
        .content_length()
        .is_some_and(|length| length > spec::MAX_IMAGE_URL_BYTES)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(download_failed)? {
        if (body.len() + chunk.len()) as u64 > spec::MAX_IMAGE_URL_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

/// Checks and decodes a source PNG and scales it to the output size (CPU-bound: run it on a
/// blocking thread).
pub(crate) fn decode_source(bytes: &[u8]) -> Result<RgbaImage, InputFailure> {
    let invalid = |error: image::ImageError| {
        InputFailure::new(
            TaskState::InvalidImageFile,
            format!("invalid image file: not a valid PNG ({error})"),
        )
    };
    let rejected = |detail: String| InputFailure::new(TaskState::ImageContentRejected, detail);
    let decoder =
        PngDecoder::with_limits(Cursor::new(bytes), Limits::default()).map_err(invalid)?;
    let (width, height) = decoder.dimensions();
    let sides = spec::MIN_IMAGE_SIDE..=spec::MAX_IMAGE_SIDE;
    if !sides.contains(&width) || !sides.contains(&height) {
        return Err(rejected(format!(
            "the input image is {width}x{height}; its resolution must be from {min}x{min} to \
             {max}x{max}",
            min = spec::MIN_IMAGE_SIDE,
            max = spec::MAX_IMAGE_SIDE
        )));
    }
    // The image crate expands a tRNS chunk into an alpha channel.
    if !decoder.color_type().has_alpha() {
        return Err(rejected(
            "the input image has no transparency (no alpha channel or tRNS chunk); a transparent \
             PNG with only the foreground is required"
                .to_owned(),
        ));
    }
    let image = DynamicImage::from_decoder(decoder).map_err(invalid)?;
    let alpha = AlphaSeen::of(&image);
    if !alpha.transparent {
        return Err(rejected(
            "the input image has no transparent pixel: its background was not removed; a \
             transparent PNG with only the foreground is required"
                .to_owned(),
        ));
    }
    if !alpha.visible {
        return Err(rejected(
            "the input image has no visible pixel: every pixel is transparent, there is no \
             foreground"
                .to_owned(),
        ));
    }
    Ok(render::prepare_foreground(image))
}

/// Whether an image has a fully transparent pixel, and one that is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AlphaSeen {
    /// Some pixel has alpha 0.
    transparent: bool,
    /// Some pixel has alpha above 0.
    visible: bool,
}

impl AlphaSeen {
    /// Reads the alpha samples at the image's own depth (a 16-bit alpha of 1 is visible, not
    /// rounded down to 0). Images without alpha have no transparent pixel.
    fn of(image: &DynamicImage) -> AlphaSeen {
        fn seen<T: PartialEq + Default + Copy>(alphas: impl Iterator<Item = T>) -> AlphaSeen {
            let mut found = AlphaSeen {
                transparent: false,
                visible: false,
            };
            for alpha in alphas {
                if alpha == T::default() {
                    found.transparent = true;
                } else {
                    found.visible = true;
                }
                if found.transparent && found.visible {
                    break;
                }
            }
            found
        }
        match image {
            DynamicImage::ImageRgba8(i) => seen(i.pixels().map(|p| p.0[3])),
            DynamicImage::ImageLumaA8(i) => seen(i.pixels().map(|p| p.0[1])),
            DynamicImage::ImageRgba16(i) => seen(i.pixels().map(|p| p.0[3])),
            DynamicImage::ImageLumaA16(i) => seen(i.pixels().map(|p| p.0[1])),
            other if other.color().has_alpha() => seen(other.to_rgba32f().pixels().map(|p| p.0[3])),
            _ => AlphaSeen {
                transparent: false,
                visible: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, ImageFormat, LumaA, Rgb, RgbImage, Rgba};

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A product cut out: an opaque disc on a transparent background.
    fn cutout(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            let (dx, dy) = (x as i64 - width as i64 / 2, y as i64 - height as i64 / 2);
            if dx * dx + dy * dy < (width.min(height) as i64 / 3).pow(2) {
                Rgba([x as u8, y as u8, 7, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        })
    }

    /// (offset, type, data length) of each chunk.
    fn chunks(png: &[u8]) -> Vec<(usize, [u8; 4], usize)> {
        let mut out = Vec::new();
        let mut at = 8;
        while at + 8 <= png.len() {
            let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            out.push((at, png[at + 4..at + 8].try_into().unwrap(), length));
            at += 12 + length;
        }
        out
    }

    fn fix_crc(png: &mut [u8], at: usize, length: usize) {
        let crc = crc32fast::hash(&png[at + 4..at + 8 + length]);
        png[at + 8 + length..at + 12 + length].copy_from_slice(&crc.to_be_bytes());
    }

    fn state(bytes: &[u8]) -> TaskState {
        decode_source(bytes).unwrap_err().state
    }

    #[test]
    fn transparent_png_decodes() {
        let decoded = decode_source(&png(DynamicImage::ImageRgba8(cutout(300, 260)))).unwrap();
        assert_eq!(decoded.dimensions(), (300, 260));
        // Grey with alpha, and 16-bit alpha whose only visible pixels have alpha 1 (of 65535).
        let grey = ImageBuffer::from_fn(256, 256, |x, _| LumaA([9u8, if x < 9 { 0 } else { 255 }]));
        assert!(decode_source(&png(DynamicImage::ImageLumaA8(grey))).is_ok());
        let faint = ImageBuffer::from_fn(256, 256, |x, _| Rgba([1u16, 2, 3, u16::from(x == 0)]));
        assert!(decode_source(&png(DynamicImage::ImageRgba16(faint))).is_ok());
    }

    #[test]
    fn failures_map_to_states() {
        assert_eq!(state(b"GIF89a not a png"), TaskState::InvalidImageFile);
        assert_eq!(state(b""), TaskState::InvalidImageFile);
        let opaque = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 300, Rgb([9, 9, 9])));
        assert_eq!(state(&png(opaque)), TaskState::ImageContentRejected);
        let small = DynamicImage::ImageRgba8(RgbaImage::new(255, 300));
        assert_eq!(state(&png(small)), TaskState::ImageContentRejected);
        // A truncated PNG: header fine, data cut.
        let mut cut = png(DynamicImage::ImageRgba8(RgbaImage::from_fn(
            300,
            300,
            |x, y| Rgba([x as u8, y as u8, 7, 128]),
        )));
        cut.truncate(cut.len() / 2);
        assert_eq!(state(&cut), TaskState::InvalidImageFile);
    }

    #[test]
    fn an_rgba_image_without_a_transparent_pixel_is_rejected() {
        let opaque = RgbaImage::from_fn(300, 300, |x, y| Rgba([x as u8, y as u8, 0, 255]));
        let failure = decode_source(&png(DynamicImage::ImageRgba8(opaque))).unwrap_err();
        assert_eq!(failure.state, TaskState::ImageContentRejected);
        assert!(
            failure.detail.contains("no transparent pixel"),
            "{}",
            failure.detail
        );
        // Partly transparent everywhere is not transparent either.
        let haze = RgbaImage::from_pixel(300, 300, Rgba([0, 0, 0, 1]));
        let failure = decode_source(&png(DynamicImage::ImageRgba8(haze))).unwrap_err();
        assert!(
            failure.detail.contains("no transparent pixel"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn an_image_without_a_visible_pixel_is_rejected() {
        let empty = RgbaImage::from_pixel(300, 260, Rgba([1, 2, 3, 0]));
        let failure = decode_source(&png(DynamicImage::ImageRgba8(empty))).unwrap_err();
        assert_eq!(failure.state, TaskState::ImageContentRejected);
        assert!(
            failure.detail.contains("no visible pixel"),
            "{}",
            failure.detail
        );
        let empty16 = ImageBuffer::from_pixel(256, 256, Rgba([9u16, 9, 9, 0]));
        let failure = decode_source(&png(DynamicImage::ImageRgba16(empty16))).unwrap_err();
        assert!(
            failure.detail.contains("no visible pixel"),
            "{}",
            failure.detail
        );
    }

    #[test]
    fn a_damaged_chunk_is_an_invalid_file() {
        let good = png(DynamicImage::ImageRgba8(cutout(300, 300)));
        let (at, _, length) = chunks(&good).into_iter().find(|c| &c.1 == b"IDAT").unwrap();
        let mut flipped = good.clone();
        flipped[at + 8 + length / 2] ^= 0x20;
        assert_eq!(state(&flipped), TaskState::InvalidImageFile);
        // The same damage with the CRC recomputed: the zlib stream itself is broken.
        let mut garbled = good.clone();
        for b in &mut garbled[at + 8 + 20..at + 8 + 60] {
            *b = 0xff;
        }
        fix_crc(&mut garbled, at, length);
        assert_eq!(state(&garbled), TaskState::InvalidImageFile);
    }

    /// What the image crate accepts that the client's full check refuses: pinned here, so that a
    /// change of the image crate's leniency shows.
    #[test]
    fn the_image_crate_is_lenient_where_the_client_is_strict() {
        let good = png(DynamicImage::ImageRgba8(cutout(300, 300)));
        let list = chunks(&good);
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"trailing bytes after IEND");
        assert!(decode_source(&trailing).is_ok(), "bytes after IEND");
        let (at, _, length) = *list.iter().rfind(|c| &c.1 == b"IDAT").unwrap();
        let mut adler = good.clone();
        adler[at + 8 + length - 1] ^= 1;
        fix_crc(&mut adler, at, length);
        assert!(decode_source(&adler).is_ok(), "a wrong Adler-32");
        // Compressed data after the end of the zlib stream: one more IDAT chunk.
        let mut extra = good[..good.len() - 12].to_vec();
        let idat_at = extra.len();
        extra.extend_from_slice(&4u32.to_be_bytes());
        extra.extend_from_slice(b"IDATjunk\0\0\0\0");
        fix_crc(&mut extra, idat_at, 4);
        extra.extend_from_slice(&good[good.len() - 12..]);
        assert!(decode_source(&extra).is_ok(), "data after the zlib stream");
        // Where it is as strict: a file without IEND.
        let no_iend = &good[..good.len() - 12];
        assert_eq!(state(no_iend), TaskState::InvalidImageFile, "no IEND");
    }
}
