//! Local pre-validation: everything the service would refuse is refused here first, before a
//! request is sent, so a bad input costs neither credits nor rate-limit budget.
//!
//! Two PNG checks:
//!
//! - **The header check** reads the file's header only — the signature, the `IHDR` chunk and the
//!   chunk headers up to the first `IDAT` — never the pixel data, so a 20 MiB file validates in
//!   microseconds. [`PngHeaderReader`] is the step-by-step form for sources that fetch bytes
//!   remotely (an S3 ranged GET); [`inspect_png_bytes`] and [`inspect_png_file`] drive it over
//!   memory and a file.
//! - **The full check** ([`PngChecker`], in its own module) reads every byte once, in order: the
//!   same header rules with the same messages first, then every chunk's length and CRC, the chunk
//!   order, the compressed image data (inflated and unfiltered as a stream, one row at a time),
//!   and the pixels themselves — a PNG whose every pixel is opaque still has its background, one
//!   whose every pixel is transparent has no foreground. [`check_png_bytes`],
//!   [`check_png_file`], [`check_png_reader`] and [`check_png_async_read`] drive it.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;
use url::Url;

use crate::spec;

#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
mod png_check;
#[cfg(test)]
mod png_check_tests;
mod png_data;
#[cfg(any(test, feature = "test-support"))]
pub(crate) mod test_png;

pub use png_check::{
    MOSTLY_OPAQUE_SHARE, PixelCounts, PixelRules, PngChecker, PngReport, PngWarning,
    check_png_async_read, check_png_bytes, check_png_file, check_png_reader,
};

/// The PNG file signature.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Bytes from the start of a PNG up to the end of its `IHDR` chunk.
const IHDR_END: usize = 8 + 8 + 13 + 4;

/// Bytes of a chunk's length and type fields.
const CHUNK_HEADER: usize = 8;

/// A PNG with more ancillary chunks than this before its image data is refused.
const MAX_CHUNKS_BEFORE_IMAGE_DATA: u32 = 4096;

/// A rule the input breaks. Each message names the rule, the value found, the limit and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The file is empty.
    #[error(
        "the image file is empty (0 bytes); the service needs a transparent PNG of 256-4096 px — \
         export the image again and check that it was saved completely"
    )]
    EmptyFile,
    /// The file does not start with the PNG signature.
    #[error(
        "not a PNG: the file starts with {found}, not the PNG signature; the service accepts only \
         PNG images with a transparent background — export the image as PNG with an alpha channel"
    )]
    NotPng {
        /// The first bytes found, in hex.
        found: String,
    },
    /// The PNG header is damaged or cut short.
    #[error("damaged PNG header: {reason}; re-export the image as PNG")]
    CorruptPng {
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than the service accepts.
    #[error(
        "the image file is {bytes} bytes ({mib:.1} MiB), over the limit of {max} bytes (20 MiB); \
         reduce its resolution or compress it harder",
        mib = *bytes as f64 / 1048576.0
    )]
    FileTooLarge {
        /// The file's size.
        bytes: u64,
        /// The limit.
        max: u64,
    },
    /// A side of the image is shorter than the minimum.
    #[error(
        "the image is {width}x{height} px; both sides must be at least {min} px (and at most {max} px); \
         use a larger source image"
    )]
    ImageTooSmall {
        /// Width found.
        width: u32,
        /// Height found.
        height: u32,
        /// The minimum side.
        min: u32,
        /// The maximum side.
        max: u32,
    },
    /// A side of the image is longer than the maximum.
    #[error(
        "the image is {width}x{height} px; both sides must be at most {max} px (and at least {min} px); \
         downscale it"
    )]
    ImageTooLarge {
        /// Width found.
        width: u32,
        /// Height found.
        height: u32,
        /// The minimum side.
        min: u32,
        /// The maximum side.
        max: u32,
    },
    /// The PNG carries no transparency.
    #[error(
        "the PNG has no transparency: colour type {color_type} ({color_name}) without a tRNS chunk; \
         the service needs a transparent PNG with only the foreground — remove the background and \
         export with an alpha channel"
    )]
    NoTransparency {
        /// The PNG colour type found.
        color_type: u8,
        /// Its name.
        color_name: &'static str,
    },
    /// The PNG's chunk structure is damaged or cut short (found by the full check).
    #[error(
        "damaged PNG: {reason}; the file was probably cut short or corrupted while copying — \
         re-export or copy it again"
    )]
    DamagedPng {
        /// What is wrong, and where.
        reason: String,
    },
    /// Bytes follow the `IEND` chunk that ends the PNG (found by the full check).
    #[error(
        "the PNG goes on for {bytes} bytes after its IEND chunk (the end of the image); such \
         trailing data is not part of a PNG — re-export the image, or cut the file after IEND"
    )]
    TrailingData {
        /// Bytes after the end of the `IEND` chunk.
        bytes: u64,
    },
    /// The compressed image data does not decode to the image the header describes (found by the
    /// full check).
    #[error(
        "damaged PNG image data: {reason}; the file was probably cut short or corrupted while \
         copying — re-export or copy it again"
    )]
    DamagedImageData {
        /// What is wrong.
        reason: String,
    },
    /// No pixel is fully transparent: the background was not removed (found by the full check;
    /// [`PixelRules::allow_opaque`] turns it into a warning).
    #[error("{}", nothing_transparent_message(*pixels, *opaque, *transparency))]
    NothingTransparent {
        /// Pixels in the image.
        pixels: u64,
        /// Of which fully opaque; the rest are partly transparent.
        opaque: u64,
        /// Where the PNG's transparency comes from.
        transparency: Transparency,
    },
    /// Every pixel is fully transparent: there is no foreground (found by the full check;
    /// [`PixelRules::allow_opaque`] turns it into a warning).
    #[error(
        "every one of the {pixels} pixels is fully transparent: the PNG has no foreground; the \
         service needs the product or subject on a transparent background — check that the \
         right layer was exported (or pass the override if you know better)"
    )]
    NothingVisible {
        /// Pixels in the image.
        pixels: u64,
    },
    /// The prompt is empty or only white space.
    #[error(
        "the prompt is empty; describe the background (e.g. \"a marble countertop in soft morning \
         light\") or use a scene template id instead"
    )]
    EmptyPrompt,
    /// The prompt is longer than the service accepts.
    #[error(
        "the prompt is {chars} characters long, over the limit of {max} characters; shorten it"
    )]
    PromptTooLong {
        /// Characters in the prompt.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// `batch_size` is not 1 or 2.
    #[error("batch size {value} is not supported; it must be 1 or 2")]
    BatchSize {
        /// The value given.
        value: i64,
    },
    /// `scene_type` is not a positive template id.
    #[error(
        "scene type {value} is not a template id; use a positive id from PicWish's scene_type list"
    )]
    SceneType {
        /// The value given.
        value: i64,
    },
    /// The image URL cannot be fetched by the service.
    #[error(
        "image URL {url:?} is not usable: {reason}; give an absolute http(s) URL the service can reach"
    )]
    ImageUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A request names no source image, or two.
    #[error(
        "{found}: a request needs exactly one source image — a PNG file (image_file) or a URL (image_url)"
    )]
    ImageSource {
        /// What was found.
        found: &'static str,
    },
    /// A request names no background description, or two.
    #[error(
        "{found}: a request needs exactly one background description — a prompt or a scene template id (scene_type)"
    )]
    Background {
        /// What was found.
        found: &'static str,
    },
}

/// How a PNG carries its transparency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transparency {
    /// Colour type 4 (grey + alpha) or 6 (RGBA).
    AlphaChannel,
    /// A `tRNS` chunk (a transparent colour or palette entries).
    TrnsChunk,
}

/// What the header of a valid input PNG says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PngInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per sample.
    pub bit_depth: u8,
    /// PNG colour type (0, 2, 3, 4 or 6).
    pub color_type: u8,
    /// Where the transparency comes from.
    pub transparency: Transparency,
    /// Size of the whole file in bytes.
    pub file_size: u64,
}

impl fmt::Display for PngInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PNG {}x{} px, {} ({}-bit), transparency from {}, {} bytes",
            self.width,
            self.height,
            color_type_name(self.color_type),
            self.bit_depth,
            match self.transparency {
                Transparency::AlphaChannel => "an alpha channel",
                Transparency::TrnsChunk => "a tRNS chunk",
            },
            self.file_size
        )
    }
}

/// The next thing a [`PngHeaderReader`] wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PngStep {
    /// Feed `len` bytes starting at byte `offset` of the file.
    Need {
        /// Where the bytes start.
        offset: u64,
        /// How many bytes.
        len: usize,
    },
    /// The header is valid.
    Done(PngInfo),
}

/// A step-by-step reader of a PNG's header, for sources where bytes are fetched on demand.
///
/// ```
/// use backdrop_core::validate::{PngHeaderReader, PngStep};
/// # fn fetch(offset: u64, len: usize) -> Vec<u8> { vec![0; len] }
/// let file_size = 1000;
/// let mut reader = PngHeaderReader::new(file_size)?;
/// let mut step = reader.first_step();
/// let info = loop {
///     match step {
///         PngStep::Done(info) => break info,
///         PngStep::Need { offset, len } => step = match reader.feed(&fetch(offset, len)) {
///             Ok(next) => next,
///             Err(e) => return Ok::<(), backdrop_core::validate::ValidationError>(()),
///         },
///     }
/// };
/// # Ok::<(), backdrop_core::validate::ValidationError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PngHeaderReader {
    file_size: u64,
    /// Offset of the bytes the reader asked for last.
    pending: u64,
    ihdr: Option<Ihdr>,
    chunks_seen: u32,
}

#[derive(Debug, Clone, Copy)]
struct Ihdr {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
}

impl PngHeaderReader {
    /// A reader for a file of `file_size` bytes; refuses empty and oversized files at once.
    pub fn new(file_size: u64) -> Result<Self, ValidationError> {
        check_file_size(file_size)?;
        Ok(PngHeaderReader {
            file_size,
            pending: 0,
            ihdr: None,
            chunks_seen: 0,
        })
    }

    /// The first read: the signature and the `IHDR` chunk.
    pub fn first_step(&self) -> PngStep {
        PngStep::Need {
            offset: 0,
            len: IHDR_END.min(usize::try_from(self.file_size).unwrap_or(IHDR_END)),
        }
    }

    /// Feeds the bytes the last step asked for (fewer at the end of the file) and returns the next
    /// step, or the rule the file breaks.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<PngStep, ValidationError> {
        match self.ihdr {
            None => self.feed_ihdr(bytes),
            Some(ihdr) => self.feed_chunk_header(ihdr, bytes),
        }
    }

    fn feed_ihdr(&mut self, bytes: &[u8]) -> Result<PngStep, ValidationError> {
        let signature = bytes.get(..8).unwrap_or(bytes);
        if signature != PNG_SIGNATURE.get(..signature.len()).unwrap_or(&[]) || signature.is_empty()
        {
            return Err(ValidationError::NotPng {
                found: hex_prefix(bytes),
            });
        }
        if bytes.len() < IHDR_END {
            return Err(corrupt("the file ends inside the IHDR chunk"));
        }
        let length = be_u32(&bytes[8..12]);
        if &bytes[12..16] != b"IHDR" || length != 13 {
            return Err(corrupt("the first chunk is not a 13-byte IHDR"));
        }
        let ihdr = Ihdr {
            width: be_u32(&bytes[16..20]),
            height: be_u32(&bytes[20..24]),
            bit_depth: bytes[24],
            color_type: bytes[25],
        };
        if ihdr.width == 0 || ihdr.height == 0 {
            return Err(corrupt("the IHDR chunk gives a zero width or height"));
        }
        if !valid_depth(ihdr.color_type, ihdr.bit_depth) {
            return Err(corrupt(&format!(
                "colour type {} with bit depth {} is not a PNG combination",
                ihdr.color_type, ihdr.bit_depth
            )));
        }
        check_dimensions(ihdr.width, ihdr.height)?;
        if matches!(ihdr.color_type, 4 | 6) {
            return Ok(PngStep::Done(self.info(ihdr, Transparency::AlphaChannel)));
        }
        self.ihdr = Some(ihdr);
        self.next_chunk_at(IHDR_END as u64)
    }

    fn feed_chunk_header(&mut self, ihdr: Ihdr, bytes: &[u8]) -> Result<PngStep, ValidationError> {
        if bytes.len() < CHUNK_HEADER {
            return Err(corrupt("the file ends before any image data (IDAT)"));
        }
        let length = u64::from(be_u32(&bytes[0..4]));
        match &bytes[4..8] {
            b"tRNS" => Ok(PngStep::Done(self.info(ihdr, Transparency::TrnsChunk))),
            b"IDAT" | b"IEND" => Err(ValidationError::NoTransparency {
                color_type: ihdr.color_type,
                color_name: color_type_name(ihdr.color_type),
            }),
            _ => {
                self.chunks_seen += 1;
                if self.chunks_seen > MAX_CHUNKS_BEFORE_IMAGE_DATA {
                    return Err(corrupt("more than 4096 chunks before the image data"));
                }
                // Chunk: length and type (8), data (length), CRC (4).
                self.next_chunk_at(self.pending + CHUNK_HEADER as u64 + length + 4)
            }
        }
    }

    fn next_chunk_at(&mut self, offset: u64) -> Result<PngStep, ValidationError> {
        if offset + CHUNK_HEADER as u64 > self.file_size {
            return Err(corrupt("the file ends before any image data (IDAT)"));
        }
        self.pending = offset;
        Ok(PngStep::Need {
            offset,
            len: CHUNK_HEADER,
        })
    }

    fn info(&self, ihdr: Ihdr, transparency: Transparency) -> PngInfo {
        PngInfo {
            width: ihdr.width,
            height: ihdr.height,
            bit_depth: ihdr.bit_depth,
            color_type: ihdr.color_type,
            transparency,
            file_size: self.file_size,
        }
    }
}

/// Validates a PNG held in memory (header only).
pub fn inspect_png_bytes(bytes: &[u8]) -> Result<PngInfo, ValidationError> {
    read_header(bytes.len() as u64, |offset, len, buf| {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(len).min(bytes.len());
        buf.extend_from_slice(&bytes[start..end]);
        Ok(())
    })
}

/// Validates a PNG file on disk, reading its header only.
///
/// Returns [`InspectFileError::Io`] when the file cannot be read at all.
pub fn inspect_png_file(path: &Path) -> Result<PngInfo, InspectFileError> {
    let mut file = std::fs::File::open(path)?;
    let file_size = file.metadata()?.len();
    read_header(file_size, |offset, len, buf| {
        file.seek(SeekFrom::Start(offset))?;
        (&mut file).take(len as u64).read_to_end(buf)?;
        Ok(())
    })
}

/// Runs a [`PngHeaderReader`] over a source of `file_size` bytes to its verdict: `read_at(offset,
/// len, buf)` appends the bytes each step asks for to the empty `buf` (fewer at the end of the
/// source).
fn read_header<E: From<ValidationError>>(
    file_size: u64,
    mut read_at: impl FnMut(u64, usize, &mut Vec<u8>) -> Result<(), E>,
) -> Result<PngInfo, E> {
    let mut reader = PngHeaderReader::new(file_size)?;
    let mut step = reader.first_step();
    let mut buf = Vec::with_capacity(IHDR_END);
    loop {
        match step {
            PngStep::Done(info) => return Ok(info),
            PngStep::Need { offset, len } => {
                buf.clear();
                read_at(offset, len, &mut buf)?;
                step = reader.feed(&buf)?;
            }
        }
    }
}

/// Why [`inspect_png_file`] refused a file.
#[derive(Debug, thiserror::Error)]
pub enum InspectFileError {
    /// The file breaks a rule of the service.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Parses an `image_url`: absolute, http or https, with a host (the URL is shown, cut to 200
/// characters, in the refusal).
pub fn parse_image_url(raw: &str) -> Result<Url, ValidationError> {
    let invalid = |reason: &str| ValidationError::ImageUrl {
        url: raw.chars().take(200).collect(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(url)
}

/// Checks the size of an image file against the service's limit.
pub fn check_file_size(bytes: u64) -> Result<(), ValidationError> {
    if bytes == 0 {
        return Err(ValidationError::EmptyFile);
    }
    if bytes > spec::MAX_IMAGE_FILE_BYTES {
        return Err(ValidationError::FileTooLarge {
            bytes,
            max: spec::MAX_IMAGE_FILE_BYTES,
        });
    }
    Ok(())
}

/// Checks image dimensions against the service's 256–4096 px rule.
pub fn check_dimensions(width: u32, height: u32) -> Result<(), ValidationError> {
    let (min, max) = (spec::MIN_IMAGE_SIDE, spec::MAX_IMAGE_SIDE);
    if width < min || height < min {
        return Err(ValidationError::ImageTooSmall {
            width,
            height,
            min,
            max,
        });
    }
    if width > max || height > max {
        return Err(ValidationError::ImageTooLarge {
            width,
            height,
            min,
            max,
        });
    }
    Ok(())
}

/// Checks a prompt: not blank, at most 1024 characters (characters, not bytes).
pub fn check_prompt(prompt: &str) -> Result<(), ValidationError> {
    if prompt.trim().is_empty() {
        return Err(ValidationError::EmptyPrompt);
    }
    let chars = prompt.chars().count();
    if chars > spec::MAX_PROMPT_CHARS {
        return Err(ValidationError::PromptTooLong {
            chars,
            max: spec::MAX_PROMPT_CHARS,
        });
    }
    Ok(())
}

/// The name of a PNG colour type.
pub fn color_type_name(color_type: u8) -> &'static str {
    match color_type {
        0 => "greyscale",
        2 => "RGB",
        3 => "palette",
        4 => "greyscale with alpha",
        6 => "RGBA",
        _ => "invalid",
    }
}

/// The message of [`ValidationError::NothingTransparent`]: "every pixel is opaque" when that is
/// the case, the split between opaque and partly transparent pixels otherwise.
fn nothing_transparent_message(pixels: u64, opaque: u64, transparency: Transparency) -> String {
    let found = if opaque == pixels {
        format!("every one of the {pixels} pixels is opaque")
    } else {
        format!(
            "none of the {pixels} pixels is fully transparent ({opaque} opaque, {} partly \
             transparent)",
            pixels - opaque
        )
    };
    let from = match transparency {
        Transparency::AlphaChannel => "an alpha channel",
        Transparency::TrnsChunk => "a tRNS chunk",
    };
    format!(
        "{found}: the PNG has {from} but the background was not removed; the service needs the \
         foreground alone on a transparent background — remove the background and export again \
         (or pass the override if you know better)"
    )
}

fn valid_depth(color_type: u8, bit_depth: u8) -> bool {
    match color_type {
        0 => matches!(bit_depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(bit_depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(bit_depth, 8 | 16),
        _ => false,
    }
}

fn corrupt(reason: &str) -> ValidationError {
    ValidationError::CorruptPng {
        reason: reason.to_owned(),
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if shown.is_empty() {
        "nothing".to_owned()
    } else {
        format!("bytes {}", shown.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_urls_must_be_http_with_a_host() {
        for bad in [
            "ftp://x/a.png",
            "not a url",
            "file:///etc/passwd",
            "https://",
        ] {
            assert!(parse_image_url(bad).is_err(), "{bad}");
        }
        assert!(parse_image_url("https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=1").is_ok());
    }

    /// A minimal PNG: signature, IHDR, optional extra chunks, IDAT and IEND (CRCs zeroed; the
    /// validator does not read them).
    pub(crate) fn png(
        width: u32,
        height: u32,
        color_type: u8,
        extra: &[(&[u8; 4], usize)],
    ) -> Vec<u8> {
        let mut out = PNG_SIGNATURE.to_vec();
        let mut chunk = |kind: &[u8; 4], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&[0; 4]);
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        for (kind, len) in extra {
            chunk(kind, &vec![0; *len]);
        }
        chunk(b"IDAT", &[0; 16]);
        chunk(b"IEND", &[]);
        out
    }

    #[test]
    fn rgba_is_accepted_from_the_ihdr_alone() {
        let info = inspect_png_bytes(&png(512, 300, 6, &[])).unwrap();
        assert_eq!((info.width, info.height), (512, 300));
        assert_eq!(info.transparency, Transparency::AlphaChannel);
    }

    #[test]
    fn palette_needs_a_trns_chunk_before_idat() {
        let with = png(256, 256, 3, &[(b"PLTE", 3 * 4), (b"tRNS", 4)]);
        assert_eq!(
            inspect_png_bytes(&with).unwrap().transparency,
            Transparency::TrnsChunk
        );
        let without = png(256, 256, 3, &[(b"PLTE", 12), (b"tEXt", 100)]);
        assert!(matches!(
            inspect_png_bytes(&without),
            Err(ValidationError::NoTransparency { color_type: 3, .. })
        ));
        assert!(matches!(
            inspect_png_bytes(&png(256, 256, 2, &[])),
            Err(ValidationError::NoTransparency { color_type: 2, .. })
        ));
    }

    #[test]
    fn dimension_limits_are_inclusive() {
        assert!(inspect_png_bytes(&png(256, 4096, 6, &[])).is_ok());
        assert!(matches!(
            inspect_png_bytes(&png(255, 300, 6, &[])),
            Err(ValidationError::ImageTooSmall { width: 255, .. })
        ));
        assert!(matches!(
            inspect_png_bytes(&png(300, 4097, 6, &[])),
            Err(ValidationError::ImageTooLarge { height: 4097, .. })
        ));
    }

    #[test]
    fn not_png_names_what_it_found() {
        let err = inspect_png_bytes(b"\xff\xd8\xff\xe0JFIF-and-more").unwrap_err();
        assert!(err.to_string().contains("ff d8 ff e0"), "{err}");
        assert_eq!(inspect_png_bytes(b""), Err(ValidationError::EmptyFile));
    }

    #[test]
    fn truncated_headers_are_corrupt_not_panics() {
        let full = png(300, 300, 2, &[(b"gAMA", 4)]);
        for cut in 1..full.len() {
            let result = inspect_png_bytes(&full[..cut]);
            assert!(result.is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn oversized_file_is_refused_before_reading() {
        assert!(matches!(
            PngHeaderReader::new(spec::MAX_IMAGE_FILE_BYTES + 1),
            Err(ValidationError::FileTooLarge { .. })
        ));
        assert!(PngHeaderReader::new(spec::MAX_IMAGE_FILE_BYTES).is_ok());
    }

    #[test]
    fn prompt_is_counted_in_characters() {
        let ok = "é".repeat(1024);
        assert!(ok.len() > 1024);
        assert!(check_prompt(&ok).is_ok());
        assert_eq!(
            check_prompt(&"é".repeat(1025)),
            Err(ValidationError::PromptTooLong {
                chars: 1025,
                max: 1024
            })
        );
        assert_eq!(check_prompt("  \n"), Err(ValidationError::EmptyPrompt));
    }

    #[test]
    fn a_huge_ancillary_chunk_is_skipped_not_read() {
        // A 1 GiB chunk length in a small file: the reader must not try to read past the end.
        let mut bytes = png(300, 300, 0, &[]);
        let idat = IHDR_END;
        bytes[idat..idat + 4].copy_from_slice(&(1u32 << 30).to_be_bytes());
        bytes[idat + 4..idat + 8].copy_from_slice(b"zTXt");
        assert!(matches!(
            inspect_png_bytes(&bytes),
            Err(ValidationError::CorruptPng { .. })
        ));
    }
}
