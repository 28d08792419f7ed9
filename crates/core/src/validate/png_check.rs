//! The full PNG check: every byte of the file, read once, in order, in pieces of any size.
//!
//! [`PngChecker`] is push-based — [`feed`](PngChecker::feed) it the file's bytes as they come
//! (from memory, a file, an async S3 body), then [`finish`](PngChecker::finish) it — so it needs
//! no seeking and no blocking bridge, and holds a bounded amount of memory (about 200 KiB for the
//! largest image) whatever the file. What it checks, in the order a refusal is reported:
//!
//! 1. **The header rules**, by the header check itself ([`PngHeaderReader`]) and with its
//!    messages: empty, over 20 MiB, not a PNG, a damaged IHDR, sides outside 256–4096 px, no
//!    alpha channel or `tRNS` chunk. A file the header check refuses gets exactly the header
//!    check's refusal, whatever else is wrong with it.
//! 2. **The structure**: every chunk's length (within the file, at most 2³¹-1) and type (four
//!    letters), every chunk's CRC-32; `IHDR` first and once, with compression, filter and
//!    interlace methods PNG defines; `PLTE` once, before the image data, in palette images (and
//!    not in greyscale ones), 1 to 256 entries; `tRNS` once, before the image data, after `PLTE`,
//!    of the size its colour type gives; at least one `IDAT`, all of them consecutive; no
//!    unknown critical chunk; `IEND` empty and last, with nothing after it; nothing cut short;
//!    exactly the declared number of bytes. ([`ValidationError::DamagedPng`],
//!    [`ValidationError::TrailingData`].) A `tRNS` chunk in an image with an alpha channel, which
//!    PNG forbids, is ignored with a warning, as decoders do.
//! 3. **The image data**: inflated, unfiltered and counted as a stream (see `png_data`): a
//!    damaged zlib stream, a bad filter type, too little or too much data, a wrong Adler-32 are
//!    [`ValidationError::DamagedImageData`]. A decoding error found inside an `IDAT` chunk is
//!    reported once that chunk's CRC has been checked, so that a damaged chunk is named as such.
//! 4. **The pixels** ([`PixelRules`]): no fully transparent pixel
//!    ([`ValidationError::NothingTransparent`]: the background is still there), or no pixel that
//!    is not fully transparent ([`ValidationError::NothingVisible`]: no foreground).
//!
//! ## Nearly opaque images: a warning, not a refusal
//!
//! An image with some fully transparent pixels but more than [`MOSTLY_OPAQUE_SHARE`] (99.9 %)
//! fully opaque ones passes with a [`PngWarning::MostlyOpaque`] in its report. A product
//! photographed edge to edge and cut out leaves only a thin transparent border, and is a fair
//! input; a warning tells the user to look without refusing what may be right. Both pixel rules
//! can be turned off ([`PixelRules::allow_opaque`]), which reports what they would have refused as
//! a [`PngWarning::Overridden`] instead; the structure and the image data are always checked.

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use super::png_data::{
    ImageData, Layout, OPAQUE, OUTSIDE_PALETTE, PARTIAL, Pixels, TRANSPARENT, Tally,
};
use super::{
    InspectFileError, PngHeaderReader, PngInfo, PngStep, ValidationError, be_u32, color_type_name,
    valid_depth,
};
use crate::spec;

/// Above this share of fully opaque pixels, an image that has some transparent pixels gets a
/// [`PngWarning::MostlyOpaque`] (the default of [`PixelRules::warn_opaque_share`]).
pub const MOSTLY_OPAQUE_SHARE: f64 = 0.999;

/// Bytes read at a time by the file and reader drivers.
const READ_BUFFER: usize = 64 * 1024;

/// The largest chunk length PNG allows (2³¹ - 1).
const MAX_CHUNK_LENGTH: u32 = 0x7fff_ffff;

/// The pixel-content rules of the full check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelRules {
    /// Skip both pixel rules (nothing fully transparent, nothing visible): what they would refuse
    /// is reported as a [`PngWarning::Overridden`] instead. For the user who knows the image is
    /// right. The header rules (an alpha channel or a `tRNS` chunk among them), the structure and
    /// the image data are checked all the same.
    pub allow_opaque: bool,
    /// Warn ([`PngWarning::MostlyOpaque`]) when more than this share of the pixels (0 to 1) is
    /// fully opaque; [`MOSTLY_OPAQUE_SHARE`] by default. 1.0 never warns.
    pub warn_opaque_share: f64,
}

impl Default for PixelRules {
    fn default() -> Self {
        PixelRules {
            allow_opaque: false,
            warn_opaque_share: MOSTLY_OPAQUE_SHARE,
        }
    }
}

impl PixelRules {
    /// The default rules with [`allow_opaque`](Self::allow_opaque) set.
    pub fn allowing_opaque() -> Self {
        PixelRules {
            allow_opaque: true,
            ..PixelRules::default()
        }
    }
}

/// The pixels of an image by transparency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PixelCounts {
    /// Pixels in the image (width × height; the sum of the three others).
    pub total: u64,
    /// Fully transparent pixels (alpha 0, or the `tRNS` colour).
    pub transparent: u64,
    /// Fully opaque pixels (alpha 255, or 65535 at 16 bits; any colour but the `tRNS` one).
    pub opaque: u64,
    /// Partly transparent pixels (alpha between the two).
    pub partial: u64,
}

/// What the full check found in a PNG it accepts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PngReport {
    /// What the header says (as [`inspect_png_bytes`](super::inspect_png_bytes) returns it).
    pub info: PngInfo,
    /// The image data is Adam7 interlaced.
    pub interlaced: bool,
    /// The pixels by transparency.
    pub pixels: PixelCounts,
    /// Share of fully transparent pixels, 0 to 1.
    pub transparent_share: f64,
    /// What the user may want to look at; none refuses the file.
    pub warnings: Vec<PngWarning>,
}

impl fmt::Display for PngReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}; {:.1} % of the pixels fully transparent, {} partly",
            self.info,
            if self.interlaced { ", interlaced" } else { "" },
            self.transparent_share * 100.0,
            self.pixels.partial
        )
    }
}

/// Something the full check noticed without refusing the file.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PngWarning {
    /// More than [`PixelRules::warn_opaque_share`] of the pixels are fully opaque.
    MostlyOpaque {
        /// Fully opaque pixels.
        opaque: u64,
        /// Fully transparent pixels.
        transparent: u64,
        /// Pixels in the image.
        pixels: u64,
    },
    /// Some pixels of a palette image use indexes past the end of its `PLTE` (counted as opaque;
    /// decoders show them black or refuse the file).
    OutsidePalette {
        /// Pixels with such an index.
        pixels: u64,
        /// Entries in the `PLTE`.
        entries: u16,
    },
    /// A `tRNS` chunk in an image with an alpha channel, where PNG forbids it: ignored, as
    /// decoders do.
    TrnsIgnored {
        /// The PNG colour type (4 or 6).
        color_type: u8,
    },
    /// A pixel rule refused the image but [`PixelRules::allow_opaque`] overrode it.
    Overridden {
        /// The refusal that was overridden.
        rule: ValidationError,
    },
}

impl PngWarning {
    /// A short stable name of the warning: `mostly_opaque`, `outside_palette`, `trns_ignored`,
    /// `overridden`.
    pub fn kind(&self) -> &'static str {
        match self {
            PngWarning::MostlyOpaque { .. } => "mostly_opaque",
            PngWarning::OutsidePalette { .. } => "outside_palette",
            PngWarning::TrnsIgnored { .. } => "trns_ignored",
            PngWarning::Overridden { .. } => "overridden",
        }
    }
}

impl fmt::Display for PngWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PngWarning::MostlyOpaque {
                opaque,
                transparent,
                pixels,
            } => write!(
                f,
                "{opaque} of the {pixels} pixels ({:.2} %) are fully opaque and only {transparent} \
                 fully transparent: check that the background was removed",
                *opaque as f64 * 100.0 / (*pixels).max(1) as f64
            ),
            PngWarning::OutsidePalette { pixels, entries } => write!(
                f,
                "{pixels} pixels use palette indexes past the {entries} entries of the PLTE chunk; \
                 decoders show them black or refuse the file — re-export the image"
            ),
            PngWarning::TrnsIgnored { color_type } => write!(
                f,
                "the tRNS chunk is ignored: colour type {color_type} ({}) has an alpha channel, \
                 where PNG forbids a tRNS chunk",
                color_type_name(*color_type)
            ),
            PngWarning::Overridden { rule } => write!(f, "allowed by the override: {rule}"),
        }
    }
}

/// `{"kind": "mostly_opaque", "message": "…"}`.
impl Serialize for PngWarning {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("PngWarning", 2)?;
        out.serialize_field("kind", self.kind())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}

/// The full check of a PNG, fed its bytes in order in pieces of any size.
///
/// ```
/// use backdrop_core::validate::{PixelRules, PngChecker};
/// # fn run(pieces: &[&[u8]], size: u64) -> Result<(), backdrop_core::validate::ValidationError> {
/// let mut checker = PngChecker::new(size, PixelRules::default())?;
/// for piece in pieces {
///     checker.feed(piece)?; // refuses as early as it can: stop reading then
/// }
/// let report = checker.finish()?;
/// println!("{report}");
/// # Ok(())
/// # }
/// ```
pub struct PngChecker {
    declared: u64,
    fed: u64,
    rules: PixelRules,
    header: Header,
    chunks: Chunks,
    /// A refusal of the structure found before the header check decided: reported once the header
    /// check accepts (its own refusals come first).
    deferred: Option<ValidationError>,
    failed: Option<ValidationError>,
}

impl fmt::Debug for PngChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PngChecker")
            .field("declared", &self.declared)
            .field("fed", &self.fed)
            .field("rules", &self.rules)
            .field("header", &self.header_info())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl PngChecker {
    /// A check of a file of `file_size` bytes; refuses empty and oversized files at once.
    pub fn new(file_size: u64, rules: PixelRules) -> Result<Self, ValidationError> {
        Ok(PngChecker {
            declared: file_size,
            fed: 0,
            rules,
            header: Header::new(file_size)?,
            chunks: Chunks::new(file_size),
            deferred: None,
            failed: None,
        })
    }

    /// Takes the next bytes of the file. Returns the refusal as soon as one is certain (stop
    /// reading then); after one, every call returns it again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), ValidationError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let room = usize::try_from(self.declared - self.fed).unwrap_or(usize::MAX);
        let result = self.take(&bytes[..bytes.len().min(room)]).and_then(|()| {
            if bytes.len() > room {
                Err(ValidationError::DamagedPng {
                    reason: format!(
                        "more than the {} bytes the file was said to have arrived",
                        self.declared
                    ),
                })
            } else {
                Ok(())
            }
        });
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// The file has ended: the verdict.
    pub fn finish(mut self) -> Result<PngReport, ValidationError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let info = self.header.finish()?;
        if let Some(error) = self.deferred {
            return Err(error);
        }
        if self.fed < self.declared {
            return Err(ValidationError::DamagedPng {
                reason: format!(
                    "the file is cut short: {} of its {} bytes arrived",
                    self.fed, self.declared
                ),
            });
        }
        let tally = self.chunks.finish()?;
        let interlaced = self.chunks.layout.is_some_and(|layout| layout.interlaced);
        let entries = self.chunks.palette_entries.unwrap_or(0);
        report(
            info,
            interlaced,
            tally,
            entries,
            self.chunks.warnings,
            self.rules,
        )
    }

    /// What the header says, once the header check has accepted it.
    pub fn header_info(&self) -> Option<PngInfo> {
        match self.header {
            Header::Done(info) => Some(info),
            Header::Reading { .. } => None,
        }
    }

    /// Bytes fed so far.
    pub fn bytes_fed(&self) -> u64 {
        self.fed
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), ValidationError> {
        self.header.push(self.fed, bytes)?;
        self.fed += bytes.len() as u64;
        if self.deferred.is_none()
            && let Err(error) = self.chunks.push(bytes)
        {
            self.deferred = Some(error);
        }
        if matches!(self.header, Header::Done(_))
            && let Some(error) = self.deferred.take()
        {
            return Err(error);
        }
        Ok(())
    }
}

/// Applies the pixel rules and builds the report.
fn report(
    info: PngInfo,
    interlaced: bool,
    tally: Tally,
    palette_entries: usize,
    mut warnings: Vec<PngWarning>,
    rules: PixelRules,
) -> Result<PngReport, ValidationError> {
    let total = u64::from(info.width) * u64::from(info.height);
    let pixels = PixelCounts {
        total,
        transparent: tally[TRANSPARENT],
        opaque: tally[OPAQUE],
        partial: tally[PARTIAL],
    };
    debug_assert_eq!(pixels.transparent + pixels.opaque + pixels.partial, total);
    if tally[OUTSIDE_PALETTE] > 0 {
        warnings.push(PngWarning::OutsidePalette {
            pixels: tally[OUTSIDE_PALETTE],
            entries: u16::try_from(palette_entries).unwrap_or(u16::MAX),
        });
    }
    let refusal = if pixels.transparent == 0 {
        Some(ValidationError::NothingTransparent {
            pixels: total,
            opaque: pixels.opaque,
            transparency: info.transparency,
        })
    } else if pixels.transparent == total {
        Some(ValidationError::NothingVisible { pixels: total })
    } else {
        None
    };
    match refusal {
        Some(rule) if !rules.allow_opaque => return Err(rule),
        Some(rule) => warnings.push(PngWarning::Overridden { rule }),
        None if pixels.opaque as f64 > rules.warn_opaque_share * total as f64 => {
            warnings.push(PngWarning::MostlyOpaque {
                opaque: pixels.opaque,
                transparent: pixels.transparent,
                pixels: total,
            });
        }
        None => {}
    }
    Ok(PngReport {
        info,
        interlaced,
        pixels,
        transparent_share: pixels.transparent as f64 / total.max(1) as f64,
        warnings,
    })
}

/// Fully checks a PNG held in memory.
pub fn check_png_bytes(bytes: &[u8], rules: PixelRules) -> Result<PngReport, ValidationError> {
    let mut checker = PngChecker::new(bytes.len() as u64, rules)?;
    checker.feed(bytes)?;
    checker.finish()
}

/// Fully checks a PNG file on disk, reading it once through a 64 KiB buffer.
///
/// Returns [`InspectFileError::Io`] when the file cannot be read.
pub fn check_png_file(path: &Path, rules: PixelRules) -> Result<PngReport, InspectFileError> {
    let file = std::fs::File::open(path)?;
    let file_size = file.metadata()?.len();
    check_png_reader(
        std::io::BufReader::with_capacity(READ_BUFFER, file),
        file_size,
        rules,
    )
}

/// Fully checks the PNG a reader yields, declared to be `file_size` bytes long; stops reading at
/// the first refusal (and never reads past `file_size` + one buffer).
pub fn check_png_reader<R: BufRead>(
    mut reader: R,
    file_size: u64,
    rules: PixelRules,
) -> Result<PngReport, InspectFileError> {
    let mut checker = PngChecker::new(file_size, rules)?;
    loop {
        let bytes = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error.into()),
        };
        if bytes.is_empty() {
            break;
        }
        checker.feed(bytes)?;
        let read = bytes.len();
        reader.consume(read);
    }
    Ok(checker.finish()?)
}

/// Fully checks the PNG an async reader yields (an S3 body, a socket), declared to be
/// `file_size` bytes long, without blocking: each piece is checked as it arrives. Stops reading
/// at the first refusal.
pub async fn check_png_async_read<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    file_size: u64,
    rules: PixelRules,
) -> Result<PngReport, InspectFileError> {
    use tokio::io::AsyncReadExt;
    let mut checker = PngChecker::new(file_size, rules)?;
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        checker.feed(&buffer[..read])?;
    }
    Ok(checker.finish()?)
}

/// The header check, driven from the byte stream: the bytes each of its steps asks for are
/// collected as they pass (its reads only move forward).
enum Header {
    Reading {
        reader: PngHeaderReader,
        /// Where the bytes it wants start.
        offset: u64,
        /// How many it wants.
        len: usize,
        /// Those collected so far.
        buf: Vec<u8>,
    },
    Done(PngInfo),
}

impl Header {
    fn new(file_size: u64) -> Result<Header, ValidationError> {
        let reader = PngHeaderReader::new(file_size)?;
        let step = reader.first_step();
        Ok(Header::after(reader, step))
    }

    fn after(reader: PngHeaderReader, step: PngStep) -> Header {
        match step {
            PngStep::Done(info) => Header::Done(info),
            PngStep::Need { offset, len } => Header::Reading {
                reader,
                offset,
                len,
                buf: Vec::with_capacity(len.min(64)),
            },
        }
    }

    /// Takes `bytes`, which start at byte `pos` of the file.
    fn push(&mut self, mut pos: u64, mut bytes: &[u8]) -> Result<(), ValidationError> {
        loop {
            let Header::Reading {
                reader,
                offset,
                len,
                buf,
            } = self
            else {
                return Ok(());
            };
            let want = *offset + buf.len() as u64;
            let end = pos + bytes.len() as u64;
            if want >= end || want < pos {
                // Not in these bytes (or already passed, which its forward reads rule out: it
                // then gets what it collected, and refuses the short read).
                if want < pos {
                    let step = reader.feed(buf)?;
                    *self = Header::after(reader.clone(), step);
                    continue;
                }
                return Ok(());
            }
            let start = usize::try_from(want - pos).unwrap_or(usize::MAX);
            let take = (*len - buf.len()).min(bytes.len() - start);
            buf.extend_from_slice(&bytes[start..start + take]);
            bytes = &bytes[start + take..];
            pos = want + take as u64;
            if buf.len() < *len {
                return Ok(());
            }
            let step = reader.feed(buf)?;
            *self = Header::after(reader.clone(), step);
        }
    }

    /// The file ended: the bytes still wanted are not coming.
    fn finish(&mut self) -> Result<PngInfo, ValidationError> {
        // A short read always ends the header check (with a refusal); bounded all the same.
        for _ in 0..4 {
            match self {
                Header::Done(info) => return Ok(*info),
                Header::Reading { reader, buf, .. } => {
                    let step = reader.feed(buf)?;
                    *self = Header::after(reader.clone(), step);
                }
            }
        }
        Err(ValidationError::CorruptPng {
            reason: "the file ends before any image data (IDAT)".to_owned(),
        })
    }
}

/// Where the structure reader is within the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Signature,
    /// A chunk's length and type.
    ChunkHeader,
    ChunkData,
    ChunkCrc,
    /// After `IEND`.
    End,
}

/// Where the image data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idat {
    NotYet,
    Reading,
    Over,
}

/// The chunk being read.
struct Chunk {
    kind: [u8; 4],
    length: u32,
    /// Where it starts in the file.
    offset: u64,
    /// Data bytes still to come.
    remaining: u32,
    crc: crc32fast::Hasher,
    /// Keep its data (IHDR, tRNS: a few bytes, bounded by the length checks).
    keep: bool,
}

/// The structure reader: chunks, CRCs, order, and the image data through [`ImageData`].
struct Chunks {
    declared: u64,
    /// Bytes taken.
    pos: u64,
    stage: Stage,
    /// Bytes of the signature, chunk header or CRC collected.
    small: [u8; 8],
    got: usize,
    chunk: Chunk,
    kept: Vec<u8>,
    /// The last complete chunk, for messages.
    last: Option<[u8; 4]>,
    layout: Option<Layout>,
    palette_entries: Option<usize>,
    trns: Option<Vec<u8>>,
    idat: Idat,
    data: Option<ImageData>,
    /// A refusal of the image data found inside the current IDAT chunk, reported after its CRC.
    data_error: Option<ValidationError>,
    tally: Option<Tally>,
    warnings: Vec<PngWarning>,
}

impl Chunks {
    fn new(declared: u64) -> Chunks {
        Chunks {
            declared,
            pos: 0,
            stage: Stage::Signature,
            small: [0; 8],
            got: 0,
            chunk: Chunk {
                kind: [0; 4],
                length: 0,
                offset: 0,
                remaining: 0,
                crc: crc32fast::Hasher::new(),
                keep: false,
            },
            kept: Vec::new(),
            last: None,
            layout: None,
            palette_entries: None,
            trns: None,
            idat: Idat::NotYet,
            data: None,
            data_error: None,
            tally: None,
            warnings: Vec::new(),
        }
    }

    fn push(&mut self, mut bytes: &[u8]) -> Result<(), ValidationError> {
        while !bytes.is_empty() {
            let taken = match self.stage {
                Stage::Signature => {
                    let take = (8 - self.got).min(bytes.len());
                    self.got += take;
                    if self.got == 8 {
                        self.got = 0;
                        self.stage = Stage::ChunkHeader;
                    }
                    take
                }
                Stage::ChunkHeader => {
                    let take = self.collect(bytes, 8);
                    if self.got == 8 {
                        self.got = 0;
                        self.pos += take as u64;
                        self.chunk_header()?;
                        bytes = &bytes[take..];
                        continue;
                    }
                    take
                }
                Stage::ChunkData => {
                    let take = usize::try_from(self.chunk.remaining)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    self.chunk_data(&bytes[..take]);
                    take
                }
                Stage::ChunkCrc => {
                    let take = self.collect(bytes, 4);
                    if self.got == 4 {
                        self.got = 0;
                        self.pos += take as u64;
                        self.chunk_end()?;
                        bytes = &bytes[take..];
                        continue;
                    }
                    take
                }
                Stage::End => {
                    // The checker never gives bytes past the declared size, and a short IEND
                    // is refused as trailing data; kept as a refusal, not a panic.
                    return Err(ValidationError::TrailingData {
                        bytes: bytes.len() as u64,
                    });
                }
            };
            self.pos += taken as u64;
            bytes = &bytes[taken..];
        }
        Ok(())
    }

    /// Copies up to `want - got` bytes into `small`.
    fn collect(&mut self, bytes: &[u8], want: usize) -> usize {
        let take = (want - self.got).min(bytes.len());
        self.small[self.got..self.got + take].copy_from_slice(&bytes[..take]);
        self.got += take;
        take
    }

    fn chunk_data(&mut self, data: &[u8]) {
        self.chunk.crc.update(data);
        if self.chunk.keep {
            self.kept.extend_from_slice(data);
        }
        if &self.chunk.kind == b"IDAT"
            && self.data_error.is_none()
            && let Some(decoder) = &mut self.data
            && let Err(error) = decoder.push(data)
        {
            self.data_error = Some(error);
        }
        self.chunk.remaining -= data.len() as u32;
        if self.chunk.remaining == 0 {
            self.stage = Stage::ChunkCrc;
        }
    }

    /// A chunk's length and type have arrived (`pos` is just past them).
    fn chunk_header(&mut self) -> Result<(), ValidationError> {
        let length = be_u32(&self.small[0..4]);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&self.small[4..8]);
        let offset = self.pos - 8;
        let name = KindName(kind);
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(damaged(format!(
                "the chunk at byte {offset} has the type {name}, not four letters{}",
                self.after_last()
            )));
        }
        if length > MAX_CHUNK_LENGTH {
            return Err(damaged(format!(
                "the {name} chunk at byte {offset} declares {length} bytes of data, over PNG's \
                 limit of {MAX_CHUNK_LENGTH}"
            )));
        }
        let end = offset + 12 + u64::from(length);
        if end > self.declared {
            return Err(damaged(format!(
                "the file is cut short: the {name} chunk at byte {offset} declares {length} bytes \
                 of data, which run {} bytes past the end of the file ({} bytes)",
                end - self.declared,
                self.declared
            )));
        }
        if self.idat == Idat::Reading && &kind != b"IDAT" {
            self.idat = Idat::Over;
            if let Some(decoder) = &mut self.data {
                self.tally = Some(decoder.finish()?);
            }
            self.data = None;
        }
        let mut keep = false;
        match &kind {
            b"IHDR" => {
                if self.last.is_some() {
                    return Err(damaged(format!("a second IHDR chunk at byte {offset}")));
                }
                if length != 13 {
                    return Err(damaged(format!(
                        "the IHDR chunk has {length} bytes, not 13"
                    )));
                }
                keep = true;
            }
            _ if self.layout.is_none() => {
                return Err(damaged(format!(
                    "the first chunk is {name}, not IHDR (at byte {offset})"
                )));
            }
            b"PLTE" => self.plte_header(offset, length)?,
            b"tRNS" => keep = self.trns_header(offset, length)?,
            b"IDAT" => self.idat_header(offset)?,
            b"IEND" => {
                if length != 0 {
                    return Err(damaged(format!(
                        "the IEND chunk at byte {offset} holds {length} bytes of data; it must \
                         be empty"
                    )));
                }
                if self.idat == Idat::NotYet {
                    return Err(damaged(format!(
                        "the image has no image data: IEND at byte {offset} comes before any \
                         IDAT chunk"
                    )));
                }
            }
            _ if kind[0].is_ascii_uppercase() => {
                return Err(damaged(format!(
                    "unknown critical chunk {name} at byte {offset}: decoders must refuse an \
                     image with a critical chunk they do not know"
                )));
            }
            _ => {}
        }
        self.chunk.kind = kind;
        self.chunk.length = length;
        self.chunk.offset = offset;
        self.chunk.remaining = length;
        self.chunk.keep = keep;
        self.chunk.crc.reset();
        self.chunk.crc.update(&kind);
        self.kept.clear();
        self.stage = if length == 0 {
            Stage::ChunkCrc
        } else {
            Stage::ChunkData
        };
        Ok(())
    }

    fn plte_header(&mut self, offset: u64, length: u32) -> Result<(), ValidationError> {
        let color_type = self.layout.map_or(0, |l| l.color_type);
        if matches!(color_type, 0 | 4) {
            return Err(damaged(format!(
                "a PLTE chunk (at byte {offset}) in a {} image, where PNG forbids one",
                color_type_name(color_type)
            )));
        }
        if self.palette_entries.is_some() {
            return Err(damaged(format!("a second PLTE chunk at byte {offset}")));
        }
        if self.idat != Idat::NotYet {
            return Err(damaged(format!(
                "the PLTE chunk at byte {offset} comes after the image data"
            )));
        }
        if length == 0 || !length.is_multiple_of(3) || length > 3 * 256 {
            return Err(damaged(format!(
                "the PLTE chunk at byte {offset} has {length} bytes; it must hold 1 to 256 RGB \
                 entries of 3 bytes"
            )));
        }
        self.palette_entries = Some(length as usize / 3);
        Ok(())
    }

    /// Checks a `tRNS` chunk's place and size; whether to keep its data.
    fn trns_header(&mut self, offset: u64, length: u32) -> Result<bool, ValidationError> {
        let color_type = self.layout.map_or(0, |l| l.color_type);
        if matches!(color_type, 4 | 6) {
            if !self
                .warnings
                .contains(&PngWarning::TrnsIgnored { color_type })
            {
                self.warnings.push(PngWarning::TrnsIgnored { color_type });
            }
            return Ok(false);
        }
        if self.trns.is_some() {
            return Err(damaged(format!("a second tRNS chunk at byte {offset}")));
        }
        if self.idat != Idat::NotYet {
            return Err(damaged(format!(
                "the tRNS chunk at byte {offset} comes after the image data"
            )));
        }
        let fits = match color_type {
            0 => length == 2,
            2 => length == 6,
            _ => match self.palette_entries {
                None => {
                    return Err(damaged(format!(
                        "the tRNS chunk at byte {offset} comes before the PLTE chunk"
                    )));
                }
                Some(entries) => length as usize <= entries,
            },
        };
        if !fits {
            let wanted = match color_type {
                0 => "2 (one grey level)".to_owned(),
                2 => "6 (one RGB colour)".to_owned(),
                _ => format!(
                    "at most {} (one alpha per palette entry)",
                    self.palette_entries.unwrap_or(0)
                ),
            };
            return Err(damaged(format!(
                "the tRNS chunk at byte {offset} has {length} bytes; a {} image's has {wanted}",
                color_type_name(color_type)
            )));
        }
        Ok(true)
    }

    /// The first `IDAT` starts the image data; later ones must follow it directly.
    fn idat_header(&mut self, offset: u64) -> Result<(), ValidationError> {
        match self.idat {
            Idat::Reading => Ok(()),
            Idat::Over => Err(damaged(format!(
                "the IDAT chunks are not consecutive: another one at byte {offset} follows the {} \
                 chunk",
                self.last
                    .map_or_else(String::new, |k| KindName(k).to_string())
            ))),
            Idat::NotYet => {
                let Some(layout) = self.layout else {
                    return Err(damaged("image data before the IHDR chunk".to_owned()));
                };
                let pixels = match layout.color_type {
                    4 | 6 => Pixels::Alpha,
                    3 => {
                        let Some(entries) = self.palette_entries else {
                            return Err(damaged(format!(
                                "the palette image has no PLTE chunk before its image data \
                                 (IDAT at byte {offset})"
                            )));
                        };
                        Pixels::from_palette(entries, self.trns.as_deref().unwrap_or_default())
                    }
                    _ => match &self.trns {
                        Some(trns) => Pixels::from_key(layout.color_type, layout.bit_depth, trns),
                        None => Pixels::Opaque,
                    },
                };
                self.data = Some(ImageData::new(layout, pixels));
                self.idat = Idat::Reading;
                Ok(())
            }
        }
    }

    /// A chunk's CRC has arrived (`pos` is just past it).
    fn chunk_end(&mut self) -> Result<(), ValidationError> {
        let stored = be_u32(&self.small[0..4]);
        let computed = self.chunk.crc.clone().finalize();
        let (kind, offset) = (self.chunk.kind, self.chunk.offset);
        if stored != computed {
            return Err(damaged(format!(
                "the CRC of the {} chunk at byte {offset} is {stored:08x} but its bytes give \
                 {computed:08x}: the chunk is damaged",
                KindName(kind)
            )));
        }
        if let Some(error) = self.data_error.take() {
            return Err(error);
        }
        match &kind {
            b"IHDR" => self.layout = Some(parse_ihdr(&self.kept)?),
            b"tRNS" if self.chunk.keep => self.trns = Some(std::mem::take(&mut self.kept)),
            b"IEND" => {
                self.stage = Stage::End;
                self.last = Some(kind);
                if self.pos < self.declared {
                    return Err(ValidationError::TrailingData {
                        bytes: self.declared - self.pos,
                    });
                }
                return Ok(());
            }
            _ => {}
        }
        self.last = Some(kind);
        self.stage = Stage::ChunkHeader;
        Ok(())
    }

    /// The file ended: it must have ended just after `IEND`.
    fn finish(&mut self) -> Result<Tally, ValidationError> {
        let last = self.last.map_or_else(
            || "signature".to_owned(),
            |k| format!("{} chunk", KindName(k)),
        );
        let (name, offset, length) = (
            KindName(self.chunk.kind),
            self.chunk.offset,
            self.chunk.length,
        );
        let reason = match self.stage {
            Stage::End => {
                return self
                    .tally
                    .ok_or_else(|| damaged("the image data was never finished".to_owned()));
            }
            Stage::Signature => "the file ends inside the PNG signature".to_owned(),
            Stage::ChunkHeader if self.got == 0 => format!(
                "the file ends after the {last} (byte {}) without an IEND chunk{}",
                self.pos,
                if self.idat == Idat::NotYet {
                    ", and has no image data (IDAT)"
                } else {
                    ""
                }
            ),
            Stage::ChunkHeader => format!(
                "the file ends {} bytes into the 8-byte header of the chunk after the {last} \
                 (byte {})",
                self.got,
                self.pos - self.got as u64
            ),
            Stage::ChunkData => format!(
                "the file ends inside the {name} chunk at byte {offset}: {} of its {length} data \
                 bytes are there",
                length - self.chunk.remaining
            ),
            Stage::ChunkCrc => {
                format!("the file ends inside the CRC of the {name} chunk at byte {offset}")
            }
        };
        Err(damaged(reason))
    }

    /// ", after the IHDR chunk", for messages.
    fn after_last(&self) -> String {
        self.last.map_or_else(String::new, |k| {
            format!(", after the {} chunk", KindName(k))
        })
    }
}

/// Reads the IHDR's fields; refuses what the image data could not be decoded with (the header
/// check has refused most of it already, with its own messages).
fn parse_ihdr(data: &[u8]) -> Result<Layout, ValidationError> {
    if data.len() != 13 {
        return Err(damaged(format!(
            "the IHDR chunk has {} bytes, not 13",
            data.len()
        )));
    }
    let layout = Layout {
        width: be_u32(&data[0..4]),
        height: be_u32(&data[4..8]),
        bit_depth: data[8],
        color_type: data[9],
        interlaced: data[12] == 1,
    };
    let max = spec::MAX_IMAGE_SIDE;
    if layout.width == 0 || layout.height == 0 || layout.width > max || layout.height > max {
        return Err(damaged(format!(
            "the IHDR gives {}x{} px, outside 1-{max}",
            layout.width, layout.height
        )));
    }
    if !valid_depth(layout.color_type, layout.bit_depth) {
        return Err(damaged(format!(
            "colour type {} with bit depth {} is not a PNG combination",
            layout.color_type, layout.bit_depth
        )));
    }
    let (compression, filter, interlace) = (data[10], data[11], data[12]);
    if compression != 0 {
        return Err(damaged(format!(
            "the IHDR gives compression method {compression}; PNG defines only 0 (deflate)"
        )));
    }
    if filter != 0 {
        return Err(damaged(format!(
            "the IHDR gives filter method {filter}; PNG defines only 0"
        )));
    }
    if interlace > 1 {
        return Err(damaged(format!(
            "the IHDR gives interlace method {interlace}; PNG defines 0 (none) and 1 (Adam7)"
        )));
    }
    Ok(layout)
}

fn damaged(reason: String) -> ValidationError {
    ValidationError::DamagedPng { reason }
}

/// A chunk type for messages: its letters, or its bytes in hex when they are not letters.
#[derive(Debug, Clone, Copy)]
struct KindName([u8; 4]);

impl fmt::Display for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(u8::is_ascii_alphabetic) {
            self.0
                .iter()
                .try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            let [a, b, c, d] = self.0;
            write!(f, "[{a:02x} {b:02x} {c:02x} {d:02x}]")
        }
    }
}
