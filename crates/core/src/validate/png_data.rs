//! The image data of a PNG, decoded as a stream for the full check ([`super::PngChecker`]): the
//! zlib stream carried by the `IDAT` chunks is inflated as it arrives, its rows are unfiltered one
//! at a time (the five filter types, every bit depth and colour type, Adam7's seven passes) and
//! their pixels counted as fully transparent, fully opaque or partly transparent.
//!
//! Memory is bounded whatever the image: the inflater's state and its 32 KiB window plus a work
//! area ([`INFLATE_BUFFER`] bytes in all), and two rows — the one being read and the one above it,
//! at most 32 KiB each (4096 px of 16-bit RGBA). No bitmap is ever held. The number of bytes the
//! data must inflate to comes from the IHDR, whose sides were checked (at most 4096 px) before the
//! first byte is inflated, and inflating stops at the first byte past it: a zip bomb costs neither
//! memory nor time.
//!
//! The inflater is [`fdeflate`], the one the `png` crate (and so `image`) decodes with: well kept
//! (image-rs), no `unsafe`, and a push API that takes input in pieces of any size and writes into
//! a buffer we own (its window included), so nothing is copied twice. Measured on the benchmark's
//! 4096×4096 RGBA file (`cargo run --release -p backdrop-bench --bin png-check`: 20.3 MB of zlib
//! data inflating to 64 MiB, written by the `png` crate's default encoder), inflating alone takes
//! 75 ms with fdeflate, 117 ms with `miniz_oxide`'s streaming inflater and 66 ms with zlib-rs
//! (through flate2). zlib-rs is 12 % faster but its own streaming API is `unsafe` (a port of
//! zlib-ng's C, `unsafe` throughout), which this crate's `forbid(unsafe_code)` and its aim of a
//! small audited input path rule out; through flate2 it would add a second crate and a copy out of
//! zlib-rs's window. The full check (about 110 ms on that file) spends two thirds of its time
//! inflating either way.

use fdeflate::{DecompressionError, Decompressor};

use super::{ValidationError, color_type_name};

/// The deflate window: back-references reach at most this far, so the inflater's buffer keeps the
/// last this-many bytes it wrote.
const WINDOW: usize = 32 * 1024;

/// Bytes of the inflater's output buffer: the window and the room it writes new bytes into.
pub(super) const INFLATE_BUFFER: usize = WINDOW + 96 * 1024;

/// The origin and step of Adam7's seven passes: (x0, y0, dx, dy).
const ADAM7: [(u32, u32, u32, u32); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

/// Index of each class in a [`Tally`].
pub(super) const TRANSPARENT: usize = 0;
/// Fully opaque pixels.
pub(super) const OPAQUE: usize = 1;
/// Partly transparent pixels.
pub(super) const PARTIAL: usize = 2;
/// Palette indexes past the end of the `PLTE` (counted as opaque as well).
pub(super) const OUTSIDE_PALETTE: usize = 3;

/// Pixels per class: [`TRANSPARENT`], [`OPAQUE`], [`PARTIAL`], [`OUTSIDE_PALETTE`] (the last is
/// also counted in [`OPAQUE`]).
pub(super) type Tally = [u64; 4];

/// What the IHDR says about the pixel data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Width in pixels (1 to 4096, checked by the caller).
    pub(super) width: u32,
    /// Height in pixels (1 to 4096, checked by the caller).
    pub(super) height: u32,
    /// Bits per sample.
    pub(super) bit_depth: u8,
    /// PNG colour type (0, 2, 3, 4 or 6).
    pub(super) color_type: u8,
    /// Adam7 interlacing.
    pub(super) interlaced: bool,
}

impl Layout {
    fn channels(&self) -> usize {
        match self.color_type {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        }
    }

    fn bits_per_pixel(&self) -> usize {
        self.channels() * usize::from(self.bit_depth)
    }

    /// Bytes of a row of `width` pixels, without its filter byte.
    fn row_bytes(&self, width: u32) -> usize {
        (width as usize * self.bits_per_pixel()).div_ceil(8)
    }

    /// The "bpp" of the filters: bytes per complete pixel, at least 1.
    fn filter_step(&self) -> usize {
        (self.bits_per_pixel() / 8).max(1)
    }

    /// The sub-images the data holds, as (width, height): the image itself, or Adam7's seven
    /// passes (some of them empty for small images).
    fn passes(&self) -> Vec<(u32, u32)> {
        if !self.interlaced {
            return vec![(self.width, self.height)];
        }
        let size = |total: u32, start: u32, step: u32| {
            if total > start {
                (total - start).div_ceil(step)
            } else {
                0
            }
        };
        ADAM7
            .iter()
            .map(|&(x0, y0, dx, dy)| (size(self.width, x0, dx), size(self.height, y0, dy)))
            .collect()
    }

    /// Bytes the image data must inflate to: every row of every pass, each with its filter byte.
    pub(super) fn data_bytes(&self) -> u64 {
        self.passes()
            .iter()
            .filter(|&&(w, h)| w > 0 && h > 0)
            .map(|&(w, h)| u64::from(h) * (1 + self.row_bytes(w) as u64))
            .sum()
    }

    /// "a 300x300 px RGBA image at 8 bits per sample", for messages.
    fn describe(&self) -> String {
        format!(
            "a {}x{} px {} image at {} bits per sample{}",
            self.width,
            self.height,
            color_type_name(self.color_type),
            self.bit_depth,
            if self.interlaced {
                " (Adam7 interlaced)"
            } else {
                ""
            }
        )
    }
}

/// How a pixel's transparency is read.
#[derive(Debug, Clone)]
pub(super) enum Pixels {
    /// Colour types 4 and 6: the last sample of each pixel is its alpha (0 transparent, the
    /// largest value of the bit depth opaque).
    Alpha,
    /// Palette: the class ([`TRANSPARENT`], [`OPAQUE`], [`PARTIAL`], [`OUTSIDE_PALETTE`]) of every
    /// index, from the `tRNS` alphas (indexes past them are opaque) and the `PLTE` size.
    Palette(Box<[u8; 256]>),
    /// Greyscale or RGB at 8 or 16 bits with a `tRNS` colour: a pixel whose bytes equal `key`
    /// (its samples as stored, big-endian) is transparent, any other opaque.
    Key {
        /// The transparent colour as the pixel's bytes.
        key: [u8; 6],
        /// Bytes per pixel (1, 2, 3 or 6).
        len: usize,
    },
    /// Greyscale at 1, 2 or 4 bits with a `tRNS` grey level: pixels of that level are
    /// transparent, the others opaque.
    GreyLevel(u8),
    /// No transparency that any pixel can match: every pixel is opaque.
    Opaque,
}

impl Pixels {
    /// Reads the transparency of a greyscale or RGB image from its `tRNS` chunk (2 or 6 bytes,
    /// checked by the caller). A colour no pixel can take at this bit depth matches nothing.
    pub(super) fn from_key(color_type: u8, bit_depth: u8, trns: &[u8]) -> Pixels {
        let samples: Vec<u16> = trns
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        let wanted = if color_type == 2 { 3 } else { 1 };
        if samples.len() != wanted {
            return Pixels::Opaque;
        }
        let max = if bit_depth == 16 {
            u16::MAX
        } else {
            (1u16 << bit_depth) - 1
        };
        if samples.iter().any(|&s| s > max) {
            return Pixels::Opaque;
        }
        let mut key = [0u8; 6];
        let len = match bit_depth {
            16 => {
                for (i, s) in samples.iter().enumerate() {
                    key[2 * i..2 * i + 2].copy_from_slice(&s.to_be_bytes());
                }
                2 * samples.len()
            }
            8 => {
                for (i, s) in samples.iter().enumerate() {
                    key[i] = s.to_be_bytes()[1];
                }
                samples.len()
            }
            _ => return Pixels::GreyLevel(samples.first().map_or(0, |s| s.to_be_bytes()[1])),
        };
        Pixels::Key { key, len }
    }

    /// Reads the transparency of a palette image from its `tRNS` alphas (at most one per entry,
    /// checked by the caller) and the number of `PLTE` entries.
    pub(super) fn from_palette(entries: usize, alphas: &[u8]) -> Pixels {
        let mut class = Box::new([OUTSIDE_PALETTE as u8; 256]);
        for (index, slot) in class.iter_mut().enumerate().take(entries) {
            *slot = match alphas.get(index) {
                None | Some(255) => OPAQUE as u8,
                Some(0) => TRANSPARENT as u8,
                Some(_) => PARTIAL as u8,
            };
        }
        Pixels::Palette(class)
    }
}

/// The image data being decoded.
pub(super) struct ImageData {
    inflater: Box<Decompressor>,
    /// The inflater's output: the last [`WINDOW`] bytes it wrote, then the new ones.
    out: Vec<u8>,
    /// Bytes of `out` holding inflated data.
    filled: usize,
    zlib_done: bool,
    rows: Rows,
    pixels: Pixels,
    tally: Tally,
    produced: u64,
    expected: u64,
    layout: Layout,
}

impl ImageData {
    /// A decoder for the data of an image of this layout (sides checked by the caller: at most
    /// 4096 px, so its buffers are at most [`INFLATE_BUFFER`] bytes and two 32 KiB rows).
    pub(super) fn new(layout: Layout, pixels: Pixels) -> ImageData {
        ImageData {
            inflater: Box::new(Decompressor::new()),
            out: vec![0; INFLATE_BUFFER],
            filled: 0,
            zlib_done: false,
            rows: Rows::new(layout),
            pixels,
            tally: [0; 4],
            produced: 0,
            expected: layout.data_bytes(),
            layout,
        }
    }

    /// Inflates the next piece of the zlib stream (the data of an `IDAT` chunk, or part of it),
    /// unfilters and counts the rows it completes.
    pub(super) fn push(&mut self, mut input: &[u8]) -> Result<(), ValidationError> {
        loop {
            if self.zlib_done {
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(damaged(
                        "more compressed data follows the end of the zlib stream".to_owned(),
                    ))
                };
            }
            self.make_room();
            let (consumed, produced) = self
                .inflater
                .read(input, &mut self.out, self.filled, false)
                .map_err(zlib_error)?;
            input = input.get(consumed..).unwrap_or_default();
            self.accept(produced)?;
            if self.inflater.is_done() {
                self.zlib_done = true;
                self.check_complete()?;
                continue;
            }
            if self.filled < self.out.len() {
                if input.is_empty() {
                    return Ok(());
                }
                if consumed == 0 && produced == 0 {
                    // fdeflate consumes all its input unless its output is full or the stream
                    // ended; never spin on a stream it does not move through.
                    return Err(damaged(format!(
                        "the zlib stream cannot be decoded past {} inflated bytes",
                        self.produced
                    )));
                }
            }
        }
    }

    /// The zlib stream has no more input (the last `IDAT` chunk ended): drains the inflater,
    /// checks that the data is complete and returns the pixel counts.
    pub(super) fn finish(&mut self) -> Result<Tally, ValidationError> {
        while !self.zlib_done {
            self.make_room();
            let (_, produced) = match self.inflater.read(&[], &mut self.out, self.filled, true) {
                Ok(read) => read,
                Err(DecompressionError::InsufficientInput) => return Err(self.cut_short()),
                Err(error) => return Err(zlib_error(error)),
            };
            self.accept(produced)?;
            if self.inflater.is_done() {
                self.zlib_done = true;
                self.check_complete()?;
            } else if produced == 0 {
                return Err(self.cut_short());
            }
        }
        Ok(self.tally)
    }

    /// Keeps the last [`WINDOW`] bytes at the start of a full output buffer, making room after
    /// them.
    fn make_room(&mut self) {
        if self.filled == self.out.len() {
            self.out.copy_within(self.filled - WINDOW..self.filled, 0);
            self.filled = WINDOW;
        }
    }

    /// Takes the `produced` bytes the inflater just wrote after `filled`.
    fn accept(&mut self, produced: usize) -> Result<(), ValidationError> {
        if produced == 0 {
            return Ok(());
        }
        let room = usize::try_from(self.expected - self.produced).unwrap_or(usize::MAX);
        let new = &self.out[self.filled..self.filled + produced];
        self.rows
            .push(&new[..produced.min(room)], &self.pixels, &mut self.tally)
            .map_err(damaged)?;
        if produced > room {
            return Err(damaged(format!(
                "the image data inflates to more than the {} bytes {} needs",
                self.expected,
                self.layout.describe()
            )));
        }
        self.produced += produced as u64;
        self.filled += produced;
        Ok(())
    }

    /// The zlib stream ended: every row must be there.
    fn check_complete(&self) -> Result<(), ValidationError> {
        if self.produced < self.expected {
            return Err(damaged(format!(
                "the zlib stream ends after {} of the {} bytes {} needs ({})",
                self.produced,
                self.expected,
                self.layout.describe(),
                self.rows.position()
            )));
        }
        Ok(())
    }

    fn cut_short(&self) -> ValidationError {
        if self.produced == self.expected {
            damaged(
                "the zlib stream does not end after the last row (its end or its checksum is \
                 missing)"
                    .to_owned(),
            )
        } else {
            damaged(format!(
                "the zlib stream is cut short after {} of the {} bytes {} needs ({})",
                self.produced,
                self.expected,
                self.layout.describe(),
                self.rows.position()
            ))
        }
    }
}

fn damaged(reason: String) -> ValidationError {
    ValidationError::DamagedImageData { reason }
}

fn zlib_error(error: DecompressionError) -> ValidationError {
    use DecompressionError as E;
    let reason = match error {
        E::BadZlibHeader => "the zlib header is invalid (not deflate with a 32 KiB window)",
        E::InsufficientInput => "the zlib stream is cut short",
        E::InvalidBlockType => "a deflate block has an invalid type",
        E::InvalidUncompressedBlockLength => "a stored deflate block has a damaged length",
        E::InvalidHlit | E::InvalidHdist => "a deflate block header declares too many codes",
        E::InvalidCodeLengthRepeat
        | E::BadCodeLengthHuffmanTree
        | E::BadLiteralLengthHuffmanTree
        | E::BadDistanceHuffmanTree => "a deflate block has an invalid Huffman table",
        E::InvalidLiteralLengthCode | E::InvalidDistanceCode => {
            "the deflate stream holds a code its block does not define"
        }
        E::InputStartsWithRun | E::DistanceTooFarBack => {
            "the deflate stream refers back past the start of the data"
        }
        E::WrongChecksum => "the zlib checksum (Adler-32) does not match the inflated data",
        E::ExtraInput => "more compressed data follows the end of the zlib stream",
    };
    damaged(reason.to_owned())
}

/// The rows of the image data: the one being filled and the one above it.
struct Rows {
    layout: Layout,
    passes: Vec<(u32, u32)>,
    /// The pass being read (`passes.len()` when all are read).
    pass: usize,
    /// The row of the pass being read.
    row: u32,
    /// Bytes of a row of this pass, with its filter byte.
    row_len: usize,
    /// The row being filled: its filter byte, then its bytes.
    cur: Vec<u8>,
    /// The row above, unfiltered (zeros for the first row of a pass), same layout.
    prev: Vec<u8>,
    /// Bytes of `cur` filled.
    got: usize,
    step: usize,
}

impl Rows {
    fn new(layout: Layout) -> Rows {
        let passes = layout.passes();
        let widest = passes.iter().map(|&(w, _)| w).max().unwrap_or(0);
        let mut rows = Rows {
            layout,
            passes,
            pass: 0,
            row: 0,
            row_len: 0,
            cur: vec![0; 1 + layout.row_bytes(widest)],
            prev: vec![0; 1 + layout.row_bytes(widest)],
            got: 0,
            step: layout.filter_step(),
        };
        rows.start_pass(0);
        rows
    }

    /// Moves to the first non-empty pass from `pass` on.
    fn start_pass(&mut self, mut pass: usize) {
        while self
            .passes
            .get(pass)
            .is_some_and(|&(w, h)| w == 0 || h == 0)
        {
            pass += 1;
        }
        self.pass = pass;
        self.row = 0;
        self.got = 0;
        if let Some(&(width, _)) = self.passes.get(pass) {
            self.row_len = 1 + self.layout.row_bytes(width);
            self.prev.fill(0);
        }
    }

    /// Takes inflated bytes (never more than the data still expected: the caller cuts them).
    fn push(&mut self, mut data: &[u8], pixels: &Pixels, tally: &mut Tally) -> Result<(), String> {
        while !data.is_empty() {
            let Some(&(width, _)) = self.passes.get(self.pass) else {
                return Err("the image data is longer than its rows".to_owned());
            };
            let take = (self.row_len - self.got).min(data.len());
            self.cur[self.got..self.got + take].copy_from_slice(&data[..take]);
            self.got += take;
            data = &data[take..];
            if self.got == self.row_len {
                self.finish_row(width, pixels, tally)?;
            }
        }
        Ok(())
    }

    fn finish_row(&mut self, width: u32, pixels: &Pixels, tally: &mut Tally) -> Result<(), String> {
        let len = self.row_len;
        let filter = self.cur[0];
        let (cur, prev) = (&mut self.cur[1..len], &self.prev[1..len]);
        if !unfilter(filter, cur, prev, self.step) {
            return Err(format!(
                "{} starts with filter type {filter}; PNG rows start with 0 to 4",
                self.position()
            ));
        }
        count(cur, width as usize, self.layout.bit_depth, pixels, tally);
        std::mem::swap(&mut self.cur, &mut self.prev);
        self.got = 0;
        self.row += 1;
        let height = self.passes.get(self.pass).map_or(0, |&(_, h)| h);
        if self.row == height {
            self.start_pass(self.pass + 1);
        }
        Ok(())
    }

    /// "row 12 of 300", or "row 3 of 38 in Adam7 pass 2", for messages.
    fn position(&self) -> String {
        match self.passes.get(self.pass) {
            None => "after the last row".to_owned(),
            Some(&(_, height)) if self.layout.interlaced => format!(
                "row {} of {height} in Adam7 pass {}",
                self.row + 1,
                self.pass + 1
            ),
            Some(&(_, height)) => format!("row {} of {height}", self.row + 1),
        }
    }
}

/// Reverses a row's filter in place; `false` for a filter type that does not exist.
fn unfilter(filter: u8, cur: &mut [u8], prev: &[u8], step: usize) -> bool {
    match filter {
        0 => {}
        1 => by_step(
            step, cur, prev, sub::<1>, sub::<2>, sub::<3>, sub::<4>, sub::<6>, sub::<8>,
        ),
        2 => {
            for (c, p) in cur.iter_mut().zip(prev) {
                *c = c.wrapping_add(*p);
            }
        }
        3 => by_step(
            step, cur, prev, avg::<1>, avg::<2>, avg::<3>, avg::<4>, avg::<6>, avg::<8>,
        ),
        4 => by_step(
            step, cur, prev, paeth::<1>, paeth::<2>, paeth::<3>, paeth::<4>, paeth::<6>, paeth::<8>,
        ),
        _ => return false,
    }
    true
}

type Unfilter = fn(&mut [u8], &[u8]);

/// Calls the version of a filter compiled for this pixel size (PNG's six: 1, 2, 3, 4, 6, 8).
#[allow(clippy::too_many_arguments)]
fn by_step(
    step: usize,
    cur: &mut [u8],
    prev: &[u8],
    s1: Unfilter,
    s2: Unfilter,
    s3: Unfilter,
    s4: Unfilter,
    s6: Unfilter,
    s8: Unfilter,
) {
    match step {
        2 => s2(cur, prev),
        3 => s3(cur, prev),
        4 => s4(cur, prev),
        6 => s6(cur, prev),
        8 => s8(cur, prev),
        _ => s1(cur, prev),
    }
}

/// Sub: each byte adds the byte one pixel to its left. (Rows hold whole pixels of `N` bytes; for
/// bit depths under 8, `N` is 1.)
fn sub<const N: usize>(cur: &mut [u8], _prev: &[u8]) {
    let mut left = [0u8; N];
    for pixel in cur.chunks_exact_mut(N) {
        for k in 0..N {
            pixel[k] = pixel[k].wrapping_add(left[k]);
            left[k] = pixel[k];
        }
    }
}

/// Average: each byte adds the mean of the bytes to its left and above.
fn avg<const N: usize>(cur: &mut [u8], prev: &[u8]) {
    let mut left = [0u8; N];
    for (pixel, above) in cur.chunks_exact_mut(N).zip(prev.chunks_exact(N)) {
        for k in 0..N {
            let mean = (u16::from(left[k]) + u16::from(above[k])) >> 1;
            pixel[k] = pixel[k].wrapping_add(mean as u8);
            left[k] = pixel[k];
        }
    }
}

/// Paeth: each byte adds whichever of left, above and upper-left is closest to left + above -
/// upper-left.
fn paeth<const N: usize>(cur: &mut [u8], prev: &[u8]) {
    let mut left = [0i16; N];
    let mut upper_left = [0i16; N];
    for (pixel, above) in cur.chunks_exact_mut(N).zip(prev.chunks_exact(N)) {
        for k in 0..N {
            let b = i16::from(above[k]);
            pixel[k] = pixel[k].wrapping_add(paeth_predictor(left[k], b, upper_left[k]));
            left[k] = i16::from(pixel[k]);
            upper_left[k] = b;
        }
    }
}

/// The Paeth predictor of left `a`, above `b` and upper-left `c` (bytes, widened), in the
/// branch-free form of stb_image (public domain), which compiles to a short dependency chain on
/// `a`: equal to the spec's definition for every input (tested exhaustively).
#[inline(always)]
fn paeth_predictor(a: i16, b: i16, c: i16) -> u8 {
    let threshold = c * 3 - (a + b);
    let (low, high) = (a.min(b), a.max(b));
    let t0 = if high <= threshold { low } else { c };
    let t1 = if threshold <= low { high } else { t0 };
    t1 as u8
}

/// Counts the pixels of an unfiltered row of `width` pixels.
fn count(row: &[u8], width: usize, bit_depth: u8, pixels: &Pixels, tally: &mut Tally) {
    let width64 = width as u64;
    match pixels {
        Pixels::Alpha => {
            let (transparent, opaque) = match (row.len() / width.max(1), bit_depth) {
                (2, 8) => alpha8::<2>(row),
                (4, 8) => alpha8::<4>(row),
                (4, _) => alpha16::<4>(row),
                _ => alpha16::<8>(row),
            };
            tally[TRANSPARENT] += transparent;
            tally[OPAQUE] += opaque;
            tally[PARTIAL] += width64 - transparent - opaque;
        }
        Pixels::Palette(class) => {
            let mut by_class = [0u64; 4];
            if bit_depth == 8 {
                for &index in row.iter().take(width) {
                    by_class[usize::from(class[usize::from(index)])] += 1;
                }
            } else {
                for_each_sample(row, bit_depth, width, |index| {
                    by_class[usize::from(class[usize::from(index)])] += 1;
                });
            }
            tally[TRANSPARENT] += by_class[TRANSPARENT];
            tally[OPAQUE] += by_class[OPAQUE] + by_class[OUTSIDE_PALETTE];
            tally[PARTIAL] += by_class[PARTIAL];
            tally[OUTSIDE_PALETTE] += by_class[OUTSIDE_PALETTE];
        }
        Pixels::Key { key, len } => {
            let key = &key[..*len];
            let transparent = row
                .chunks_exact(*len)
                .take(width)
                .filter(|pixel| *pixel == key)
                .count() as u64;
            tally[TRANSPARENT] += transparent;
            tally[OPAQUE] += width64 - transparent;
        }
        Pixels::GreyLevel(level) => {
            let mut transparent = 0u64;
            for_each_sample(row, bit_depth, width, |sample| {
                transparent += u64::from(sample == *level);
            });
            tally[TRANSPARENT] += transparent;
            tally[OPAQUE] += width64 - transparent;
        }
        Pixels::Opaque => tally[OPAQUE] += width64,
    }
}

/// Fully transparent and fully opaque pixels of a row of `N`-byte pixels whose last byte is an
/// 8-bit alpha.
fn alpha8<const N: usize>(row: &[u8]) -> (u64, u64) {
    let (mut transparent, mut opaque) = (0u32, 0u32);
    for pixel in row.chunks_exact(N) {
        let alpha = pixel[N - 1];
        transparent += u32::from(alpha == 0);
        opaque += u32::from(alpha == u8::MAX);
    }
    (u64::from(transparent), u64::from(opaque))
}

/// The same with a 16-bit alpha in the pixel's last two bytes (opaque is 65535).
fn alpha16<const N: usize>(row: &[u8]) -> (u64, u64) {
    let (mut transparent, mut opaque) = (0u32, 0u32);
    for pixel in row.chunks_exact(N) {
        let alpha = u16::from_be_bytes([pixel[N - 2], pixel[N - 1]]);
        transparent += u32::from(alpha == 0);
        opaque += u32::from(alpha == u16::MAX);
    }
    (u64::from(transparent), u64::from(opaque))
}

/// Calls `f` with each of the first `width` samples of a row packed at 1, 2 or 4 bits, most
/// significant first.
fn for_each_sample(row: &[u8], bit_depth: u8, width: usize, mut f: impl FnMut(u8)) {
    let depth = u32::from(bit_depth.clamp(1, 8));
    let per_byte = 8 / depth;
    let mask = ((1u16 << depth) - 1) as u8;
    let mut left = width;
    for &byte in row {
        for k in 0..per_byte {
            if left == 0 {
                return;
            }
            f((byte >> (8 - depth * (k + 1))) & mask);
            left -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam7_passes_cover_every_pixel() {
        for (w, h) in [(1, 1), (2, 3), (7, 9), (8, 8), (300, 257), (4096, 1)] {
            let layout = Layout {
                width: w,
                height: h,
                bit_depth: 8,
                color_type: 6,
                interlaced: true,
            };
            let pixels: u64 = layout
                .passes()
                .iter()
                .map(|&(pw, ph)| u64::from(pw) * u64::from(ph))
                .sum();
            assert_eq!(pixels, u64::from(w) * u64::from(h), "{w}x{h}");
        }
    }

    #[test]
    fn paeth_predictor_follows_the_spec_for_every_input() {
        // The spec's definition, with ties going to a, then b.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in 0..=255u8 {
                    let p = i32::from(a) + i32::from(b) - i32::from(c);
                    let (pa, pb, pc) = (
                        (p - i32::from(a)).abs(),
                        (p - i32::from(b)).abs(),
                        (p - i32::from(c)).abs(),
                    );
                    let want = if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    };
                    let got = paeth_predictor(i16::from(a), i16::from(b), i16::from(c));
                    assert_eq!(got, want, "{a} {b} {c}");
                }
            }
        }
    }

    #[test]
    fn sub_byte_samples_stop_at_the_width() {
        let mut seen = Vec::new();
        for_each_sample(&[0b1011_0001, 0b1100_0000], 2, 5, |s| seen.push(s));
        assert_eq!(seen, [2, 3, 0, 1, 3]);
    }
}
