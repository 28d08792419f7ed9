//! A small PNG encoder for the tests: any colour type and bit depth, every filter type, Adam7,
//! real CRCs, zlib from `miniz_oxide` (not the inflater the checker uses), the image data split
//! over IDAT chunks of any size; and an independent count of the pixels by transparency.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Built for other crates' tests too (feature test-support), which use only the fixtures.
#![cfg_attr(not(test), allow(dead_code))]

use super::PNG_SIGNATURE;

/// An image: its pixels' samples, row by row (the colour type's channels in order; palette
/// images: the index).
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) color_type: u8,
    pub(crate) bit_depth: u8,
    pub(crate) samples: Vec<[u16; 4]>,
}

impl Image {
    /// An image whose pixels are `f(x, y)`.
    pub(crate) fn from_fn(
        width: u32,
        height: u32,
        color_type: u8,
        bit_depth: u8,
        mut f: impl FnMut(u16, u16) -> [u16; 4],
    ) -> Image {
        let mut samples = Vec::with_capacity((width * height) as usize);
        for y in 0..height {
            for x in 0..width {
                samples.push(f(x as u16, y as u16));
            }
        }
        Image {
            width,
            height,
            color_type,
            bit_depth,
            samples,
        }
    }

    /// An image of random samples (within the bit depth; palette indexes below `entries`).
    pub(crate) fn random(
        width: u32,
        height: u32,
        color_type: u8,
        bit_depth: u8,
        rng: &mut Rng,
    ) -> Image {
        let max = max_sample(bit_depth);
        Image::from_fn(width, height, color_type, bit_depth, |_, _| {
            let mut s = [0u16; 4];
            for v in &mut s {
                *v = (rng.next() as u32 % (u32::from(max) + 1)) as u16;
            }
            s
        })
    }

    pub(crate) fn channels(&self) -> usize {
        match self.color_type {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        }
    }

    fn pixel(&self, x: u32, y: u32) -> [u16; 4] {
        self.samples[(y * self.width + x) as usize]
    }
}

/// The largest sample of a bit depth.
pub(crate) fn max_sample(bit_depth: u8) -> u16 {
    if bit_depth == 16 {
        u16::MAX
    } else {
        (1u16 << bit_depth) - 1
    }
}

/// Which filter each row gets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filters {
    /// Every row this type (0 to 4; any other value is written as is, for damaged files).
    All(u8),
    /// Row n gets type n mod 5.
    Cycle,
    /// Random types from this seed.
    Random(u64),
}

/// How to write the file.
#[derive(Debug, Clone)]
pub(crate) struct Encoding {
    pub(crate) interlaced: bool,
    pub(crate) filters: Filters,
    /// zlib level 0 (stored) to 10.
    pub(crate) level: u8,
    /// The image data is split into IDAT chunks of this many bytes.
    pub(crate) idat_size: usize,
    pub(crate) palette: Option<Vec<[u8; 3]>>,
    /// The tRNS chunk's data, as written.
    pub(crate) trns: Option<Vec<u8>>,
    /// Ancillary chunks written before the image data.
    pub(crate) extra: Vec<([u8; 4], Vec<u8>)>,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding {
            interlaced: false,
            filters: Filters::Cycle,
            level: 6,
            idat_size: 8192,
            palette: None,
            trns: None,
            extra: Vec::new(),
        }
    }
}

/// Appends a chunk with its real CRC.
pub(crate) fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// The IHDR chunk's data.
pub(crate) fn ihdr(image: &Image, interlaced: bool) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&image.width.to_be_bytes());
    data.extend_from_slice(&image.height.to_be_bytes());
    data.extend_from_slice(&[
        image.bit_depth,
        image.color_type,
        0,
        0,
        u8::from(interlaced),
    ]);
    data
}

/// A whole PNG file.
pub(crate) fn encode(image: &Image, encoding: &Encoding) -> Vec<u8> {
    let raw = filtered_data(image, encoding.interlaced, encoding.filters);
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&raw, encoding.level);
    assemble(image, encoding, &zlib)
}

/// A PNG file around a given zlib stream.
pub(crate) fn assemble(image: &Image, encoding: &Encoding, zlib: &[u8]) -> Vec<u8> {
    let mut out = PNG_SIGNATURE.to_vec();
    chunk(&mut out, b"IHDR", &ihdr(image, encoding.interlaced));
    if let Some(palette) = &encoding.palette {
        let data: Vec<u8> = palette.iter().flatten().copied().collect();
        chunk(&mut out, b"PLTE", &data);
    }
    if let Some(trns) = &encoding.trns {
        chunk(&mut out, b"tRNS", trns);
    }
    for (kind, data) in &encoding.extra {
        chunk(&mut out, kind, data);
    }
    for piece in zlib.chunks(encoding.idat_size.max(1)) {
        chunk(&mut out, b"IDAT", piece);
    }
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The image's rows, filtered, each with its filter byte: the bytes the zlib stream holds.
pub(crate) fn filtered_data(image: &Image, interlaced: bool, filters: Filters) -> Vec<u8> {
    const ADAM7: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let passes: Vec<(u32, u32, u32, u32)> = if interlaced {
        ADAM7.to_vec()
    } else {
        vec![(0, 0, 1, 1)]
    };
    let bits = image.channels() * usize::from(image.bit_depth);
    let step = (bits / 8).max(1);
    let mut rng = Rng(match filters {
        Filters::Random(seed) => seed | 1,
        _ => 1,
    });
    let mut out = Vec::new();
    let mut row_number = 0usize;
    for (x0, y0, dx, dy) in passes {
        let xs: Vec<u32> = (x0..image.width).step_by(dx as usize).collect();
        if xs.is_empty() {
            continue;
        }
        let mut prev: Vec<u8> = Vec::new();
        for y in (y0..image.height).step_by(dy as usize) {
            let row = pack_row(image, &xs, y);
            if prev.is_empty() {
                prev = vec![0; row.len()];
            }
            let filter = match filters {
                Filters::All(f) => f,
                Filters::Cycle => (row_number % 5) as u8,
                Filters::Random(_) => (rng.next() % 5) as u8,
            };
            out.push(filter);
            out.extend(filter_row(filter, &row, &prev, step));
            prev = row;
            row_number += 1;
        }
    }
    out
}

/// The bytes of the pixels at `xs` on row `y`.
fn pack_row(image: &Image, xs: &[u32], y: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut nbits) = (0u16, 0u8);
    for &x in xs {
        let pixel = image.pixel(x, y);
        for &sample in &pixel[..image.channels()] {
            match image.bit_depth {
                16 => out.extend_from_slice(&sample.to_be_bytes()),
                8 => out.push(sample as u8),
                depth => {
                    acc = (acc << depth) | (sample & max_sample(depth));
                    nbits += depth;
                    if nbits == 8 {
                        out.push(acc as u8);
                        (acc, nbits) = (0, 0);
                    }
                }
            }
        }
    }
    if nbits > 0 {
        out.push((acc << (8 - nbits)) as u8);
    }
    out
}

fn filter_row(filter: u8, row: &[u8], prev: &[u8], step: usize) -> Vec<u8> {
    (0..row.len())
        .map(|i| {
            let a = if i >= step { row[i - step] } else { 0 };
            let b = prev[i];
            let c = if i >= step { prev[i - step] } else { 0 };
            let predicted = match filter {
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                _ => 0,
            };
            row[i].wrapping_sub(predicted)
        })
        .collect()
}

/// (transparent, opaque, partial) pixels, counted from the samples and the tRNS data directly.
pub(crate) fn expected_counts(image: &Image, trns: Option<&[u8]>) -> (u64, u64, u64) {
    let max = max_sample(image.bit_depth);
    let key: Option<Vec<u16>> = trns.map(|t| {
        t.chunks(2)
            .map(|p| u16::from_be_bytes([p[0], *p.get(1).unwrap_or(&0)]))
            .collect()
    });
    let (mut transparent, mut opaque, mut partial) = (0, 0, 0);
    for pixel in &image.samples {
        let alpha: u32 = match image.color_type {
            4 | 6 => {
                let a = pixel[image.channels() - 1];
                if a == 0 {
                    0
                } else if a == max {
                    2
                } else {
                    1
                }
            }
            3 => match trns.and_then(|t| t.get(usize::from(pixel[0]))) {
                Some(0) => 0,
                Some(255) | None => 2,
                Some(_) => 1,
            },
            _ => match &key {
                Some(key) if key[..] == pixel[..image.channels()] => 0,
                _ => 2,
            },
        };
        match alpha {
            0 => transparent += 1,
            2 => opaque += 1,
            _ => partial += 1,
        }
    }
    (transparent, opaque, partial)
}

/// Where each chunk of a PNG is: (offset, type, data length).
pub(crate) fn chunks(png: &[u8]) -> Vec<(usize, [u8; 4], usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
        out.push((at, kind, length));
        at += 12 + length;
    }
    out
}

/// Recomputes the CRC of the chunk at `offset` (after editing its data).
pub(crate) fn fix_crc(png: &mut [u8], offset: usize) {
    let length = u32::from_be_bytes(png[offset..offset + 4].try_into().unwrap()) as usize;
    let crc = crc32fast::hash(&png[offset + 4..offset + 8 + length]);
    png[offset + 8 + length..offset + 12 + length].copy_from_slice(&crc.to_be_bytes());
}

/// xorshift64*: a small deterministic generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
