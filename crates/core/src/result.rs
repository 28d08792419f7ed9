//! Generated images: telling a URL from inline base64, decoding, and recognising image bytes.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde::Serialize;
use url::Url;

/// Where a result image is: at a URL (valid 1 hour) or inline in the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultLocation {
    /// Download it from this http(s) URL.
    Url(Url),
    /// The image's bytes, decoded from base64 (raw or a `data:` URI).
    Inline(Bytes),
}

/// Why a result field could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFieldError(pub String);

impl ResultLocation {
    /// Reads a result field (`image_1` / `image_2`): an http(s) URL, a `data:` URI, or raw base64.
    pub fn parse(field: &str) -> Result<ResultLocation, ResultFieldError> {
        ResultLocation::parse_capped(field, usize::MAX)
    }

    /// Reads a result field like [`ResultLocation::parse`], refusing inline data that decodes to
    /// more than `max_bytes` (the size is worked out from the base64 text before decoding).
    pub fn parse_capped(field: &str, max_bytes: usize) -> Result<ResultLocation, ResultFieldError> {
        let field = field.trim();
        if let Some(rest) = field.strip_prefix("data:") {
            let (meta, data) = rest
                .split_once(',')
                .ok_or_else(|| ResultFieldError("a data: URI without a comma".into()))?;
            if !meta
                .split(';')
                .any(|part| part.eq_ignore_ascii_case("base64"))
            {
                return Err(ResultFieldError(format!(
                    "a data: URI that is not base64 ({meta})"
                )));
            }
            return decode_base64(data, max_bytes).map(ResultLocation::Inline);
        }
        let lower = field.get(..8).unwrap_or(field).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Url::parse(field)
                .map(ResultLocation::Url)
                .map_err(|e| ResultFieldError(format!("an invalid URL ({e})")));
        }
        if field.contains("://") {
            return Err(ResultFieldError(
                "a URL that is not http(s); refusing to fetch it".into(),
            ));
        }
        decode_base64(field, max_bytes).map(ResultLocation::Inline)
    }
}

fn decode_base64(data: &str, max_bytes: usize) -> Result<Bytes, ResultFieldError> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    // Valid base64 of n digits (padding aside) decodes to exactly floor(n * 3 / 4) bytes.
    let digits = compact.trim_end_matches('=').len();
    let decoded = digits / 4 * 3 + digits % 4 * 3 / 4;
    if decoded > max_bytes {
        return Err(ResultFieldError(format!(
            "inline data of {decoded} bytes, larger than the {max_bytes}-byte download limit"
        )));
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(compact.as_bytes()) {
            return Ok(Bytes::from(bytes));
        }
    }
    Err(ResultFieldError(
        "neither an http(s) URL nor valid base64".into(),
    ))
}

/// The formats a generated image may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
    /// WebP (`RIFF....WEBP`).
    Webp,
}

impl ImageFormat {
    /// Recognises an image by its first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.starts_with(&crate::validate::PNG_SIGNATURE) {
            Some(ImageFormat::Png)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::Webp)
        } else {
            None
        }
    }

    /// The usual file extension.
    pub const fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Png => "png",
            ImageFormat::Webp => "webp",
        }
    }

    /// The MIME type.
    pub const fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Png => "image/png",
            ImageFormat::Webp => "image/webp",
        }
    }
}

/// A downloaded (or decoded) generated image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedImage {
    /// 1 for `image_1`, 2 for `image_2`.
    pub index: u8,
    /// What the bytes are.
    pub format: ImageFormat,
    /// The image file's bytes.
    pub bytes: Bytes,
}

impl GeneratedImage {
    /// Writes the image to `path`, whole or not at all: a reader of `path` sees the old file or
    /// the whole image, never half of it, and the file survives a power cut once this returns.
    /// The folder must exist. The extension is the caller's choice ([`ImageFormat::extension`]
    /// gives the usual one).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<()> {
        crate::files::write_atomically(path, &self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'];

    #[test]
    fn urls_and_base64_are_told_apart() {
        assert!(matches!(
            ResultLocation::parse("https://oss.example/x.jpg?Expires=1&Signature=a%2Bb"),
            Ok(ResultLocation::Url(_))
        ));
        let raw = STANDARD.encode(JPEG);
        assert_eq!(
            ResultLocation::parse(&raw),
            Ok(ResultLocation::Inline(Bytes::from_static(JPEG)))
        );
        let uri = format!("data:image/jpeg;base64,{raw}");
        assert_eq!(
            ResultLocation::parse(&uri),
            Ok(ResultLocation::Inline(Bytes::from_static(JPEG)))
        );
        let wrapped = format!("{}\n{}", &raw[..4], &raw[4..]);
        assert!(matches!(
            ResultLocation::parse(&wrapped),
            Ok(ResultLocation::Inline(_))
        ));
    }

    #[test]
    fn inline_data_is_held_to_the_cap() {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            for len in 0..12 {
                let data = vec![0xA5; len];
                let field = format!("data:image/jpeg;base64,{}", engine.encode(&data));
                assert_eq!(
                    ResultLocation::parse_capped(&field, len),
                    Ok(ResultLocation::Inline(Bytes::from(data)))
                );
                if len > 0 {
                    let err = ResultLocation::parse_capped(&field, len - 1).unwrap_err();
                    assert!(err.0.contains("download limit"), "{}", err.0);
                }
            }
        }
    }

    #[test]
    fn other_schemes_and_garbage_are_refused() {
        assert!(ResultLocation::parse("file:///etc/passwd").is_err());
        assert!(ResultLocation::parse("<html>nope</html>").is_err());
        assert!(ResultLocation::parse("data:text/plain,hello").is_err());
    }

    #[test]
    fn sniffing() {
        assert_eq!(ImageFormat::sniff(JPEG), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"<!doctype html>"), None);
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
    }
}
