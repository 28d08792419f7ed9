//! The source image of a task: downloading an `image_url` and checking and decoding the PNG, with
//! the task states the service reports when that fails.
//!
//! Like the real service, these checks run inside the task, not in the create request:
//!
//! | problem | state |
//! | --- | --- |
//! | the `image_url` cannot be fetched (connection error, timeout, non-2xx answer) | -3 |
//! | the `image_url` body is over [`spec::MAX_IMAGE_URL_BYTES`] | -5 |
//! | the bytes are not a decodable PNG | -7 |
//! | the PNG's sides are outside 256–4096 px, or it has neither an alpha channel nor a `tRNS` chunk | -14 |
//!
//! The last row is this emulator's choice: the spec says the input "must be a transparent PNG
//! with only the foreground, with resolution from 256x256 to 4096x4096" without naming the state,
//! and -14 ("the input image content does not meet the requirements") is the closest documented one.

use std::io::Cursor;

use backdrop_core::{TaskState, spec, validate};
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
    let decoder =
        PngDecoder::with_limits(Cursor::new(bytes), Limits::default()).map_err(invalid)?;
    let (width, height) = decoder.dimensions();
    validate::check_dimensions(width, height)
        .map_err(|error| InputFailure::new(TaskState::ImageContentRejected, error.to_string()))?;
    if !decoder.color_type().has_alpha() {
        return Err(InputFailure::new(
            TaskState::ImageContentRejected,
            "the input image has no transparency (no alpha channel or tRNS chunk); \
             a transparent PNG with only the foreground is required",
        ));
    }
    let image = DynamicImage::from_decoder(decoder).map_err(invalid)?;
    Ok(render::prepare_foreground(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage, Rgba};

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn transparent_png_decodes() {
        let image = RgbaImage::from_pixel(300, 260, Rgba([1, 2, 3, 0]));
        let decoded = decode_source(&png(DynamicImage::ImageRgba8(image))).unwrap();
        assert_eq!(decoded.dimensions(), (300, 260));
    }

    #[test]
    fn failures_map_to_states() {
        let state = |bytes: &[u8]| decode_source(bytes).unwrap_err().state;
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
}
