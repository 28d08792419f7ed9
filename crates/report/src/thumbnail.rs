//! Thumbnails: small JPEGs the page shows instead of the full images scaled by the browser.
//!
//! Memory stays bounded whatever the input: a generated image (a JPEG of at most 1024 px, the
//! spec's output limit) is decoded whole — at most 3 MiB of pixels — and dropped once reduced; a
//! source PNG (up to 4096×4096, 16 bits per channel) is **never decoded whole**: its rows are read
//! one at a time and summed into the thumbnail's pixels as they pass ([`png_on_checkerboard`]),
//! so the memory is one row and the thumbnail, about 1.5 MiB at most, instead of the 64–128 MiB of
//! a full decode. Transparent pixels are drawn over a checkerboard, baked into the JPEG.

use std::io::{BufRead, Seek};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageReader, RgbImage};

/// The longest side of a thumbnail, in pixels (shown at half that on the page, so it stays sharp
/// on high-density screens).
pub const THUMBNAIL_SIZE: u32 = 240;

/// JPEG quality of thumbnails.
const QUALITY: u8 = 78;

/// The largest image decoded whole, in pixels per side: the spec's outputs are at most 1024 px.
const MAX_WHOLE_SIDE: u32 = 4096;

/// The largest PNG reduced, in pixels per side: twice the service's limit, so that a source
/// refused for its size still shows, and a hostile header cannot make the work unbounded.
const MAX_STREAMED_SIDE: u32 = 8192;

/// Side of one checkerboard square behind transparent pixels, in thumbnail pixels.
const CHECKER: u32 = 8;

/// Why a thumbnail could not be made.
#[derive(Debug)]
pub struct ThumbnailError(String);

impl std::fmt::Display for ThumbnailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ThumbnailError {}

impl ThumbnailError {
    fn new(message: impl std::fmt::Display) -> Self {
        ThumbnailError(message.to_string())
    }
}

/// The size of a `width`×`height` image reduced to fit [`THUMBNAIL_SIZE`] (never enlarged, at
/// least 1 px per side).
pub fn fitted(width: u32, height: u32) -> (u32, u32) {
    let long = width.max(height).max(1);
    if long <= THUMBNAIL_SIZE {
        return (width.max(1), height.max(1));
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(THUMBNAIL_SIZE) + u64::from(long) / 2) / u64::from(long))
            .max(1) as u32
    };
    (scale(width), scale(height))
}

/// A JPEG thumbnail of a generated image (JPEG or PNG, at most 4096 px a side: decoded whole,
/// then reduced and dropped). Transparency, if any, is drawn over the checkerboard.
pub fn generated_image(reader: impl BufRead + Seek) -> Result<Vec<u8>, ThumbnailError> {
    let mut decoder = ImageReader::new(reader)
        .with_guessed_format()
        .map_err(ThumbnailError::new)?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_WHOLE_SIDE);
    limits.max_image_height = Some(MAX_WHOLE_SIDE);
    limits.max_alloc = Some(96 * 1024 * 1024);
    decoder.limits(limits);
    let image = decoder.decode().map_err(ThumbnailError::new)?;
    let (width, height) = fitted(image.width(), image.height());
    let small = image.thumbnail_exact(width, height);
    drop(image);
    let rgb = if small.color().has_alpha() {
        over_checkerboard(&small.into_rgba8())
    } else {
        small.into_rgb8()
    };
    encode(&rgb)
}

/// A JPEG thumbnail of a PNG (any colour type, bit depth or interlacing), transparent pixels
/// drawn over a checkerboard so that transparency shows. Reads the PNG row by row: memory is one
/// row plus the thumbnail, whatever the PNG's size.
pub fn png_on_checkerboard(reader: impl BufRead + Seek) -> Result<Vec<u8>, ThumbnailError> {
    let mut decoder = png::Decoder::new(reader);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let mut reader = decoder.read_info().map_err(ThumbnailError::new)?;
    let (width, height, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    if width == 0 || height == 0 || width > MAX_STREAMED_SIDE || height > MAX_STREAMED_SIDE {
        return Err(ThumbnailError::new(format!(
            "a PNG of {width}x{height} px cannot be reduced"
        )));
    }
    let (color, _) = reader.output_color_type();
    let channels = color.samples();
    let (tw, th) = fitted(width, height);
    let mut sums = Sums::new(width, height, tw, th);
    let mut passes = Adam7Lines::new(width, height, interlaced);
    while let Some(row) = reader.next_row().map_err(ThumbnailError::new)? {
        let (y, x0, step) = passes
            .next()
            .ok_or_else(|| ThumbnailError::new("the PNG has more rows than its header says"))?;
        sums.add_row(y, x0, step, row.data(), channels, color);
    }
    // A PNG that ends early is shown with what it had; a thumbnail is not a validator.
    encode(&sums.into_image())
}

/// Pixel sums of each thumbnail pixel: premultiplied colour, alpha and how many source pixels.
struct Sums {
    width: u32,
    height: u32,
    tw: u32,
    th: u32,
    /// Per thumbnail pixel: r·a, g·a, b·a, a, count.
    cells: Vec<[u64; 5]>,
    /// The thumbnail column of each source column.
    column: Vec<u32>,
}

impl Sums {
    fn new(width: u32, height: u32, tw: u32, th: u32) -> Self {
        Sums {
            width,
            height,
            tw,
            th,
            cells: vec![[0; 5]; (tw * th) as usize],
            column: (0..width)
                .map(|x| (u64::from(x) * u64::from(tw) / u64::from(width)) as u32)
                .collect(),
        }
    }

    /// Adds the pixels of one decoded row: image row `y`, pixels at columns `x0`, `x0 + step`, …
    fn add_row(
        &mut self,
        y: u32,
        x0: u32,
        step: u32,
        data: &[u8],
        channels: usize,
        color: png::ColorType,
    ) {
        if y >= self.height {
            return;
        }
        let ty = (u64::from(y) * u64::from(self.th) / u64::from(self.height)) as u32;
        let row = (ty * self.tw) as usize;
        for (i, pixel) in data.chunks_exact(channels.max(1)).enumerate() {
            let x = x0 + (i as u32) * step;
            if x >= self.width {
                break;
            }
            let (r, g, b, a) = match color {
                png::ColorType::Grayscale => (pixel[0], pixel[0], pixel[0], 255),
                png::ColorType::GrayscaleAlpha => (pixel[0], pixel[0], pixel[0], pixel[1]),
                png::ColorType::Rgb => (pixel[0], pixel[1], pixel[2], 255),
                png::ColorType::Rgba => (pixel[0], pixel[1], pixel[2], pixel[3]),
                // EXPAND turns palettes into RGB(A): never seen here.
                png::ColorType::Indexed => (pixel[0], pixel[0], pixel[0], 255),
            };
            let a64 = u64::from(a);
            let cell = &mut self.cells[row + self.column[x as usize] as usize];
            cell[0] += u64::from(r) * a64;
            cell[1] += u64::from(g) * a64;
            cell[2] += u64::from(b) * a64;
            cell[3] += a64;
            cell[4] += 1;
        }
    }

    /// The averages, composited over the checkerboard.
    fn into_image(self) -> RgbImage {
        RgbImage::from_fn(self.tw, self.th, |x, y| {
            let [r, g, b, a, n] = self.cells[(y * self.tw + x) as usize];
            let back = checker(x, y);
            if n == 0 {
                return image::Rgb([back; 3]);
            }
            // Average alpha (0..=255) and the premultiplied colour, then "over" the background.
            let full = 255 * n;
            let blend = |premultiplied: u64| {
                let value = (premultiplied + u64::from(back) * (full - a)) / full;
                value.min(255) as u8
            };
            image::Rgb([blend(r), blend(g), blend(b)])
        })
    }
}

/// The checkerboard's grey at a thumbnail pixel.
fn checker(x: u32, y: u32) -> u8 {
    if (x / CHECKER + y / CHECKER).is_multiple_of(2) {
        255
    } else {
        214
    }
}

/// An RGBA image drawn over the checkerboard.
fn over_checkerboard(image: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let [r, g, b, a] = image.get_pixel(x, y).0;
        let back = u32::from(checker(x, y));
        let a = u32::from(a);
        let blend = |c: u8| ((u32::from(c) * a + back * (255 - a) + 127) / 255) as u8;
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

fn encode(image: &RgbImage) -> Result<Vec<u8>, ThumbnailError> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&DynamicImage::ImageRgb8(image.clone()))
        .map_err(ThumbnailError::new)?;
    Ok(out)
}

/// Where each decoded row of a PNG lies in the image: `(y, first x, x step)`, for plain PNGs
/// (every row, every pixel) and Adam7-interlaced ones (the seven passes, in order, skipping empty
/// ones — the order `png`'s reader yields them in).
struct Adam7Lines {
    width: u32,
    height: u32,
    interlaced: bool,
    pass: usize,
    line: u32,
}

/// Adam7 passes: (x offset, y offset, x step, y step).
const PASSES: [(u32, u32, u32, u32); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

impl Adam7Lines {
    fn new(width: u32, height: u32, interlaced: bool) -> Self {
        Adam7Lines {
            width,
            height,
            interlaced,
            pass: 0,
            line: 0,
        }
    }
}

impl Iterator for Adam7Lines {
    type Item = (u32, u32, u32);

    fn next(&mut self) -> Option<(u32, u32, u32)> {
        if !self.interlaced {
            let y = self.line;
            self.line += 1;
            return (y < self.height).then_some((y, 0, 1));
        }
        while self.pass < PASSES.len() {
            let (x0, y0, dx, dy) = PASSES[self.pass];
            let columns = self.width.saturating_sub(x0).div_ceil(dx);
            let lines = self.height.saturating_sub(y0).div_ceil(dy);
            if columns > 0 && self.line < lines {
                let y = y0 + self.line * dy;
                self.line += 1;
                return Some((y, x0, dx));
            }
            self.pass += 1;
            self.line = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Cursor;

    use super::*;

    fn png_bytes(image: DynamicImage, interlaced: bool) -> Vec<u8> {
        if interlaced {
            return adam7_png(&image.into_rgba8());
        }
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    /// An Adam7-interlaced RGBA PNG (no encoder at hand writes one): each pass's rows, filter 0.
    fn adam7_png(rgba: &image::RgbaImage) -> Vec<u8> {
        use std::io::Write;
        let (width, height) = rgba.dimensions();
        let mut raw = Vec::new();
        for (x0, y0, dx, dy) in PASSES {
            if width <= x0 || height <= y0 {
                continue;
            }
            for y in (y0..height).step_by(dy as usize) {
                raw.push(0);
                for x in (x0..width).step_by(dx as usize) {
                    raw.extend_from_slice(&rgba.get_pixel(x, y).0);
                }
            }
        }
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&raw).unwrap();
        let idat = zlib.finish().unwrap();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 6, 0, 0, 1]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", Vec::new())] {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(&data);
            out.extend_from_slice(kind);
            out.extend_from_slice(&data);
            out.extend_from_slice(&crc.finalize().to_be_bytes());
        }
        out
    }

    fn decode(jpeg: &[u8]) -> RgbImage {
        image::load_from_memory(jpeg).unwrap().into_rgb8()
    }

    #[test]
    fn sizes_fit_and_keep_the_aspect_ratio() {
        assert_eq!(fitted(1024, 1024), (240, 240));
        assert_eq!(fitted(4096, 1024), (240, 60));
        assert_eq!(fitted(300, 4096), (18, 240));
        assert_eq!(fitted(100, 50), (100, 50));
        assert_eq!(fitted(4096, 1), (240, 1));
    }

    #[test]
    fn a_transparent_png_shows_the_checkerboard_and_its_subject() {
        let source = backdrop_tests::transparent_png(800, 600);
        let jpeg = png_on_checkerboard(Cursor::new(source)).unwrap();
        let thumb = decode(&jpeg);
        assert_eq!(thumb.dimensions(), (240, 180));
        // The corner is transparent: checkerboard greys, not black.
        let corner = thumb.get_pixel(2, 2).0;
        assert!(corner.iter().all(|&c| c > 200), "{corner:?}");
        let next = thumb.get_pixel(CHECKER + 2, 2).0;
        assert!(
            corner[0].abs_diff(next[0]) > 20,
            "{corner:?} / {next:?}: a checkerboard"
        );
        // The middle is the opaque red disc.
        let middle = thumb.get_pixel(120, 90).0;
        assert!(middle[0] > 150 && middle[1] < 110, "{middle:?}");
    }

    #[test]
    fn interlaced_16_bit_and_grey_pngs_give_the_same_picture() {
        let rgba = image::load_from_memory(&backdrop_tests::transparent_png(333, 257))
            .unwrap()
            .into_rgba8();
        let plain = decode(
            &png_on_checkerboard(Cursor::new(png_bytes(
                DynamicImage::ImageRgba8(rgba.clone()),
                false,
            )))
            .unwrap(),
        );
        let interlaced = decode(
            &png_on_checkerboard(Cursor::new(png_bytes(
                DynamicImage::ImageRgba8(rgba.clone()),
                true,
            )))
            .unwrap(),
        );
        let deep = decode(
            &png_on_checkerboard(Cursor::new(png_bytes(
                DynamicImage::ImageRgba16(DynamicImage::ImageRgba8(rgba.clone()).into_rgba16()),
                false,
            )))
            .unwrap(),
        );
        assert_eq!(plain.dimensions(), (240, 185));
        for other in [&interlaced, &deep] {
            assert_eq!(other.dimensions(), plain.dimensions());
            let differs = plain
                .pixels()
                .zip(other.pixels())
                .filter(|(a, b)| a.0.iter().zip(b.0).any(|(x, y)| x.abs_diff(y) > 12))
                .count();
            assert!(differs < 50, "{differs} pixels differ");
        }
        let grey = DynamicImage::ImageLumaA8(DynamicImage::ImageRgba8(rgba).into_luma_alpha8());
        let thumb = decode(&png_on_checkerboard(Cursor::new(png_bytes(grey, false))).unwrap());
        assert_eq!(thumb.dimensions(), (240, 185));
    }

    #[test]
    fn a_generated_jpeg_is_reduced() {
        let big = RgbImage::from_fn(1024, 768, |x, _| image::Rgb([(x / 4) as u8, 80, 160]));
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&DynamicImage::ImageRgb8(big))
            .unwrap();
        let thumb = generated_image(Cursor::new(&jpeg)).unwrap();
        assert!(thumb.starts_with(&[0xFF, 0xD8, 0xFF]));
        assert_eq!(decode(&thumb).dimensions(), (240, 180));
        assert!(
            thumb.len() < 20_000,
            "{} bytes for a thumbnail",
            thumb.len()
        );
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert!(png_on_checkerboard(Cursor::new(b"not a png".to_vec())).is_err());
        assert!(generated_image(Cursor::new(b"\xFF\xD8\xFF garbage".to_vec())).is_err());
        let mut cut = backdrop_tests::transparent_png(400, 400);
        cut.truncate(cut.len() / 2);
        // Cut mid-image: an error or a partial picture, never a panic.
        let _ = png_on_checkerboard(Cursor::new(cut));
    }
}
