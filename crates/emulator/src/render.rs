//! The result images: a background chosen from the prompt (or scene id), a soft contact shadow
//! and the foreground composited over them, encoded as JPEG.
//!
//! The background is a vertical two-colour gradient (the "wall" or sky) down to a horizon, a floor
//! band below it, light falling from one side and a slight vignette. Its colours come from the
//! first recognised scene word of the prompt ("beach", "marble", "sunset", "kitchen", ...), tinted
//! by the first recognised colour word ("red", "blue", ...) if there is one; a colour word alone
//! gives a plain backdrop of that colour; with neither, a hash of the prompt picks the colours.
//! Words of the negative prompt are skipped. The same prompt always gives the same picture; a
//! `scene_type` id picks a scene by its number. The second image of a batch is a variation: hues rotated and the
//! light coming from the other side.

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageError, RgbImage, RgbaImage};

use backdrop_core::spec;

/// JPEG quality of the results.
const JPEG_QUALITY: u8 = 85;

/// Hue rotation of the second image of a batch, in degrees.
const VARIATION_HUE_DEGREES: f32 = 25.0;

/// What the background should show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backdrop {
    /// A free-text prompt and the optional negative prompt.
    Prompt {
        /// The prompt.
        prompt: String,
        /// Words to avoid.
        negative: Option<String>,
    },
    /// A scene template id.
    Scene(u32),
}

/// An RGB colour with channels in `0.0..=1.0`.
type Rgb = [f32; 3];

/// The colours of a background.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Palette {
    sky_top: Rgb,
    sky_bottom: Rgb,
    floor_far: Rgb,
    floor_near: Rgb,
    /// Height of the horizon as a share of the image height, from the top.
    horizon: f32,
}

/// A colour scheme and the words that select it.
struct Scheme {
    words: &'static [&'static str],
    colors: [u32; 4],
    horizon: f32,
}

const fn scheme(words: &'static [&'static str], colors: [u32; 4], horizon: f32) -> Scheme {
    Scheme {
        words,
        colors,
        horizon,
    }
}

/// How much a colour word tints a scene's backdrop ("a red kitchen").
const COLOR_TINT: f32 = 0.4;

/// Recognised scene words. Colours are sky top, sky bottom, floor far, floor near (0xRRGGBB).
const SCENES: &[Scheme] = &[
    scheme(
        &[
            "beach", "sand", "sea", "ocean", "coast", "tropical", "summer",
        ],
        [0x5DADE2, 0xD6EAF8, 0xF5DEB3, 0xE0C08F],
        0.55,
    ),
    scheme(
        &[
            "forest", "jungle", "moss", "woods", "nature", "leaves", "leaf",
        ],
        [0x2E5E3A, 0x8FBF7F, 0x5B4630, 0x3E2F20],
        0.6,
    ),
    scheme(
        &["marble", "stone", "granite"],
        [0xF2F2F0, 0xDADAD6, 0xE8E6E1, 0xBDBBB5],
        0.62,
    ),
    scheme(
        &["sunset", "sunrise", "dusk", "dawn", "golden"],
        [0x3B1C5A, 0xF39C4B, 0x7A3E2E, 0x3A1F1A],
        0.6,
    ),
    scheme(
        &[
            "kitchen",
            "wood",
            "wooden",
            "table",
            "counter",
            "countertop",
            "rustic",
        ],
        [0xEFE4D2, 0xD9C3A5, 0xA0522D, 0x6B3A1E],
        0.6,
    ),
    scheme(
        &[
            "studio",
            "minimal",
            "minimalist",
            "white",
            "clean",
            "product",
        ],
        [0xFFFFFF, 0xE9E9EC, 0xE4E4E8, 0xCFCFD6],
        0.65,
    ),
    scheme(
        &["snow", "winter", "ice", "frozen", "christmas"],
        [0xCFE3F5, 0xFFFFFF, 0xF4F8FC, 0xDCE6F0],
        0.58,
    ),
    scheme(
        &["desert", "dune", "dunes", "sahara"],
        [0xF6C27A, 0xFBE3B5, 0xD9A25F, 0xB97D3F],
        0.52,
    ),
    scheme(
        &["night", "space", "midnight", "neon", "galaxy"],
        [0x05060F, 0x1C2340, 0x15151C, 0x050508],
        0.62,
    ),
    scheme(
        &["city", "urban", "street", "concrete", "industrial"],
        [0x8A9BA8, 0xC9D1D6, 0x6E6E6E, 0x4A4A4A],
        0.6,
    ),
    scheme(
        &["garden", "flower", "flowers", "spring", "park", "grass"],
        [0xA8D8F0, 0xE8F6FF, 0x6FAF5B, 0x3F7A34],
        0.55,
    ),
    scheme(
        &["pastel", "soft", "dreamy"],
        [0xF7D6E0, 0xD6EAF8, 0xE6E0F8, 0xCFC6EE],
        0.62,
    ),
];

/// Recognised colour words (same layout as [`SCENES`]).
const COLORS: &[Scheme] = &[
    scheme(
        &["red", "crimson", "scarlet"],
        [0x7A0F14, 0xD94A4A, 0x5A0A0E, 0x3A0508],
        0.62,
    ),
    scheme(
        &["orange", "amber"],
        [0xE8701A, 0xFFC58A, 0xB85512, 0x7A380A],
        0.62,
    ),
    scheme(
        &["yellow", "lemon"],
        [0xF2C80F, 0xFFF2A8, 0xC9A20A, 0x8F7305],
        0.62,
    ),
    scheme(
        &["green", "emerald", "mint"],
        [0x1E6B3A, 0x7CCB8F, 0x145228, 0x0B3318],
        0.62,
    ),
    scheme(
        &["blue", "navy", "azure"],
        [0x0B3D91, 0x6FA8DC, 0x0A2F6E, 0x051A40],
        0.62,
    ),
    scheme(
        &["purple", "violet", "lavender"],
        [0x4B2A7B, 0xB9A3E3, 0x3A1F60, 0x24123D],
        0.62,
    ),
    scheme(
        &["pink", "rose", "blush"],
        [0xE75A93, 0xFBD3E3, 0xC94479, 0x8F2F55],
        0.62,
    ),
    scheme(
        &["grey", "gray", "silver"],
        [0x6D6D72, 0xC7C7CC, 0x5A5A5F, 0x3A3A3E],
        0.62,
    ),
    scheme(
        &["gold", "luxury", "luxurious"],
        [0x8A6A1E, 0xF2D27A, 0x6B5014, 0x3F2F0A],
        0.62,
    ),
    scheme(
        &["brown", "coffee", "chocolate", "leather"],
        [0x4A2C1A, 0xA47551, 0x3A2213, 0x24150B],
        0.62,
    ),
    scheme(
        &["white", "ivory", "snowy"],
        [0xFFFFFF, 0xF1F1F3, 0xE6E6EA, 0xCDCDD3],
        0.64,
    ),
    scheme(
        &["black", "dark", "charcoal"],
        [0x141418, 0x3A3A42, 0x202026, 0x0C0C0F],
        0.62,
    ),
];

impl Palette {
    /// The palette of a background description.
    pub(crate) fn for_backdrop(backdrop: &Backdrop) -> Palette {
        match backdrop {
            Backdrop::Prompt { prompt, negative } => {
                let avoided: Vec<String> = negative.as_deref().map(words).unwrap_or_default();
                let wanted: Vec<String> = words(prompt)
                    .into_iter()
                    .filter(|word| !avoided.contains(word))
                    .collect();
                let first = |schemes: &'static [Scheme]| {
                    wanted.iter().find_map(|word| find_scheme(schemes, word))
                };
                match (first(SCENES), first(COLORS)) {
                    (Some(scene), Some(color)) => {
                        Palette::from_scheme(scene).tinted(&Palette::from_scheme(color))
                    }
                    (Some(scheme), None) | (None, Some(scheme)) => Palette::from_scheme(scheme),
                    (None, None) => Palette::from_hash(fnv1a(prompt.to_lowercase().as_bytes())),
                }
            }
            Backdrop::Scene(id) => {
                let index = usize::try_from(*id).unwrap_or(0) % SCENES.len();
                SCENES
                    .get(index)
                    .map(Palette::from_scheme)
                    .unwrap_or_else(|| Palette::from_hash(u64::from(*id)))
            }
        }
    }

    fn from_scheme(scheme: &Scheme) -> Palette {
        let [sky_top, sky_bottom, floor_far, floor_near] = scheme.colors.map(hex);
        Palette {
            sky_top,
            sky_bottom,
            floor_far,
            floor_near,
            horizon: scheme.horizon,
        }
    }

    fn from_hash(hash: u64) -> Palette {
        let hue = (hash % 360) as f32;
        let saturation = 0.25 + ((hash >> 9) % 30) as f32 / 100.0;
        Palette {
            sky_top: hsv_to_rgb(hue, saturation + 0.15, 0.85),
            sky_bottom: hsv_to_rgb(hue + 25.0, saturation * 0.6, 0.98),
            floor_far: hsv_to_rgb(hue + 10.0, saturation + 0.1, 0.68),
            floor_near: hsv_to_rgb(hue + 10.0, saturation + 0.2, 0.42),
            horizon: 0.55 + ((hash >> 20) % 12) as f32 / 100.0,
        }
    }

    /// This palette with its wall / sky mixed towards another's.
    fn tinted(&self, tint: &Palette) -> Palette {
        Palette {
            sky_top: lerp(self.sky_top, tint.sky_top, COLOR_TINT),
            sky_bottom: lerp(self.sky_bottom, tint.sky_bottom, COLOR_TINT),
            floor_far: lerp(self.floor_far, tint.floor_far, COLOR_TINT / 2.0),
            floor_near: lerp(self.floor_near, tint.floor_near, COLOR_TINT / 2.0),
            horizon: self.horizon,
        }
    }

    /// The same palette with every hue rotated by `degrees`.
    fn rotated(&self, degrees: f32) -> Palette {
        let rotate = |c: Rgb| {
            let (h, s, v) = rgb_to_hsv(c);
            hsv_to_rgb(h + degrees, s, v)
        };
        Palette {
            sky_top: rotate(self.sky_top),
            sky_bottom: rotate(self.sky_bottom),
            floor_far: rotate(self.floor_far),
            floor_near: rotate(self.floor_near),
            horizon: self.horizon,
        }
    }
}

fn find_scheme(schemes: &'static [Scheme], word: &str) -> Option<&'static Scheme> {
    let singular = word.strip_suffix('s');
    schemes.iter().find(|scheme| {
        scheme
            .words
            .iter()
            .any(|w| *w == word || Some(*w) == singular)
    })
}

/// The lower-case alphabetic words of a text.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// 64-bit FNV-1a: a stable hash (unlike `std`'s, which may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn hex(color: u32) -> Rgb {
    let channel = |shift: u32| ((color >> shift) & 0xff) as f32 / 255.0;
    [channel(16), channel(8), channel(0)]
}

fn hsv_to_rgb(hue: f32, saturation: f32, value: f32) -> Rgb {
    let h = hue.rem_euclid(360.0) / 60.0;
    let s = saturation.clamp(0.0, 1.0);
    let v = value.clamp(0.0, 1.0);
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    [r + m, g + m, b + m]
}

fn rgb_to_hsv([r, g, b]: Rgb) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let hue = if delta <= f32::EPSILON {
        0.0
    } else if max == r {
        60.0 * ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / delta + 2.0)
    } else {
        60.0 * ((r - g) / delta + 4.0)
    };
    let saturation = if max <= f32::EPSILON {
        0.0
    } else {
        delta / max
    };
    (hue, saturation, max)
}

/// The size of a result for a source of `width` x `height`: the longest side at most
/// [`spec::MAX_OUTPUT_SIDE`], the aspect ratio kept.
pub(crate) fn output_size(width: u32, height: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= spec::MAX_OUTPUT_SIDE || longest == 0 {
        return (width.max(1), height.max(1));
    }
    let scale = f64::from(spec::MAX_OUTPUT_SIDE) / f64::from(longest);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, spec::MAX_OUTPUT_SIDE);
    (side(width), side(height))
}

/// The decoded source scaled to the output size, as RGBA.
pub(crate) fn prepare_foreground(source: DynamicImage) -> RgbaImage {
    let (width, height) = output_size(source.width(), source.height());
    if (width, height) == (source.width(), source.height()) {
        source.into_rgba8()
    } else {
        source
            .resize_exact(width, height, FilterType::Triangle)
            .into_rgba8()
    }
}

/// Renders result number `variant` (0 for `image_1`, 1 for `image_2`) as JPEG bytes.
pub(crate) fn render_jpeg(
    foreground: &RgbaImage,
    palette: &Palette,
    variant: usize,
) -> Result<Vec<u8>, ImageError> {
    let image = render(foreground, palette, variant);
    let mut out = Vec::with_capacity(image.as_raw().len() / 8);
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).encode_image(&image)?;
    Ok(out)
}

/// Renders result number `variant` as RGB pixels.
pub(crate) fn render(foreground: &RgbaImage, palette: &Palette, variant: usize) -> RgbImage {
    let (width, height) = foreground.dimensions();
    let palette = if variant == 0 {
        *palette
    } else {
        palette.rotated(VARIATION_HUE_DEGREES * variant as f32)
    };
    // Light from the left (-1) in the first image, from the right (+1) in the second, and so on.
    let light: f32 = if variant.is_multiple_of(2) { -1.0 } else { 1.0 };
    let shadow = Shadow::new(foreground, light);
    let (w, h) = (width as f32, height as f32);
    let horizon = palette.horizon * h;
    let band = (h / 60.0).max(1.0);
    let mut out = RgbImage::new(width, height);
    for (x, y, pixel) in out.enumerate_pixels_mut() {
        let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
        let sky = lerp(
            palette.sky_top,
            palette.sky_bottom,
            (yf / horizon.max(1.0)).clamp(0.0, 1.0),
        );
        let floor = lerp(
            palette.floor_far,
            palette.floor_near,
            ((yf - horizon) / (h - horizon).max(1.0)).clamp(0.0, 1.0),
        );
        let mut color = lerp(sky, floor, smoothstep(horizon - band, horizon + band, yf));
        // Side light and vignette.
        let across = xf / w * 2.0 - 1.0;
        let down = yf / h * 2.0 - 1.0;
        let lit = 1.0 + 0.10 * light * across - 0.12 * (across * across + down * down) / 2.0;
        // Contact shadow.
        let dark = 1.0 - 0.55 * shadow.at(xf, yf);
        let factor = lit * dark;
        color = color.map(|c| c * factor);
        // The product over everything.
        let fg = foreground.get_pixel(x, y).0;
        let alpha = f32::from(fg[3]) / 255.0;
        let blended: [u8; 3] = std::array::from_fn(|i| {
            let value = f32::from(fg[i]) / 255.0 * alpha + color[i] * (1.0 - alpha);
            (value.clamp(0.0, 1.0) * 255.0).round() as u8
        });
        pixel.0 = blended;
    }
    out
}

/// A blurred, offset copy of the foreground's alpha at a reduced resolution.
struct Shadow {
    mask: Vec<f32>,
    width: usize,
    height: usize,
    /// Output pixels per mask pixel.
    step: f32,
    dx: f32,
    dy: f32,
}

impl Shadow {
    /// Longest side of the shadow mask.
    const MASK_SIDE: u32 = 192;

    fn new(foreground: &RgbaImage, light: f32) -> Shadow {
        let (width, height) = foreground.dimensions();
        let step = width.max(height).div_ceil(Self::MASK_SIDE).max(1);
        let mw = width.div_ceil(step) as usize;
        let mh = height.div_ceil(step) as usize;
        let mut mask = vec![0.0f32; mw * mh];
        let mut counts = vec![0u32; mw * mh];
        for (x, y, pixel) in foreground.enumerate_pixels() {
            let index = (y / step) as usize * mw + (x / step) as usize;
            if let (Some(m), Some(n)) = (mask.get_mut(index), counts.get_mut(index)) {
                *m += f32::from(pixel.0[3]) / 255.0;
                *n += 1;
            }
        }
        for (m, n) in mask.iter_mut().zip(&counts) {
            if *n > 0 {
                *m /= *n as f32;
            }
        }
        let radius = (mw.max(mh) / 40).max(1);
        for _ in 0..3 {
            box_blur(&mut mask, mw, mh, radius);
        }
        Shadow {
            mask,
            width: mw,
            height: mh,
            step: step as f32,
            dx: -light * 0.03 * width as f32,
            dy: 0.025 * height as f32,
        }
    }

    /// Shadow strength (0..1) at an output pixel centre.
    fn at(&self, x: f32, y: f32) -> f32 {
        let mx = (x - self.dx) / self.step - 0.5;
        let my = (y - self.dy) / self.step - 0.5;
        if mx < -1.0 || my < -1.0 {
            return 0.0;
        }
        let (x0, y0) = (mx.floor(), my.floor());
        let (fx, fy) = (mx - x0, my - y0);
        let sample = |xi: f32, yi: f32| -> f32 {
            if xi < 0.0 || yi < 0.0 {
                return 0.0;
            }
            let (xi, yi) = (xi as usize, yi as usize);
            if xi >= self.width || yi >= self.height {
                return 0.0;
            }
            self.mask.get(yi * self.width + xi).copied().unwrap_or(0.0)
        };
        let top = sample(x0, y0) * (1.0 - fx) + sample(x0 + 1.0, y0) * fx;
        let bottom = sample(x0, y0 + 1.0) * (1.0 - fx) + sample(x0 + 1.0, y0 + 1.0) * fx;
        top * (1.0 - fy) + bottom * fy
    }
}

/// One horizontal and one vertical box-blur pass (edges clamped).
fn box_blur(data: &mut [f32], width: usize, height: usize, radius: usize) {
    let mut line = Vec::with_capacity(width.max(height));
    for y in 0..height {
        line.clear();
        line.extend((0..width).map(|x| data[y * width + x]));
        blur_line(&line, radius, |x, v| data[y * width + x] = v);
    }
    for x in 0..width {
        line.clear();
        line.extend((0..height).map(|y| data[y * width + x]));
        blur_line(&line, radius, |y, v| data[y * width + x] = v);
    }
}

fn blur_line(line: &[f32], radius: usize, mut write: impl FnMut(usize, f32)) {
    let len = line.len();
    if len == 0 {
        return;
    }
    let at = |i: isize| line[i.clamp(0, len as isize - 1) as usize];
    let r = radius as isize;
    let span = (2 * r + 1) as f32;
    let mut sum: f32 = (-r..=r).map(at).sum();
    for i in 0..len {
        write(i, sum / span);
        let i = i as isize;
        sum += at(i + r + 1) - at(i - r);
    }
}

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    std::array::from_fn(|i| a[i] + (b[i] - a[i]) * t)
}

fn smoothstep(edge0: f32, edge1: f32, x: f32) -> f32 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgba;

    fn product(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            let inside = x > width / 4 && x < width * 3 / 4 && y > height / 4 && y < height * 3 / 4;
            if inside {
                Rgba([200, 30, 30, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        })
    }

    fn prompt(text: &str) -> Backdrop {
        Backdrop::Prompt {
            prompt: text.to_owned(),
            negative: None,
        }
    }

    #[test]
    fn output_size_keeps_the_aspect_ratio() {
        assert_eq!(output_size(300, 400), (300, 400));
        assert_eq!(output_size(1024, 1024), (1024, 1024));
        assert_eq!(output_size(4096, 2048), (1024, 512));
        assert_eq!(output_size(2000, 3000), (683, 1024));
        assert_eq!(output_size(4096, 256), (1024, 64));
    }

    #[test]
    fn words_choose_the_scheme() {
        let beach = Palette::for_backdrop(&prompt("A sunny BEACH at noon"));
        assert_eq!(beach.sky_top, hex(0x5DADE2));
        let red = Palette::for_backdrop(&prompt("on a red velvet cloth"));
        assert_eq!(red.sky_top, hex(0x7A0F14));
        // Plurals and the negative prompt.
        let flowers = Palette::for_backdrop(&Backdrop::Prompt {
            prompt: "red roses and flowers".to_owned(),
            negative: Some("red".to_owned()),
        });
        assert_ne!(flowers.sky_top, hex(0x7A0F14));
        // A scene word wins over a colour word, which tints it.
        let dark_marble = Palette::for_backdrop(&prompt("a dark marble countertop"));
        let marble = Palette::for_backdrop(&prompt("marble"));
        assert_eq!(dark_marble.horizon, marble.horizon);
        assert!(dark_marble.sky_top[0] < marble.sky_top[0]);
        // Unknown words: stable hash.
        let a = Palette::for_backdrop(&prompt("zorblax quintessence"));
        let b = Palette::for_backdrop(&prompt("zorblax quintessence"));
        let c = Palette::for_backdrop(&prompt("flumph quagmire"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Palette::for_backdrop(&Backdrop::Scene(105)),
            Palette::for_backdrop(&Backdrop::Scene(105))
        );
    }

    #[test]
    fn hsv_round_trip() {
        for color in [0x5DADE2, 0x7A0F14, 0xF2C80F, 0x808080] {
            let rgb = hex(color);
            let (h, s, v) = rgb_to_hsv(rgb);
            let back = hsv_to_rgb(h, s, v);
            for i in 0..3 {
                assert!((rgb[i] - back[i]).abs() < 1e-4, "{color:06x}");
            }
        }
    }

    #[test]
    fn the_product_stays_and_the_shadow_darkens_the_floor() {
        let fg = product(300, 400);
        let palette = Palette::for_backdrop(&prompt("white studio"));
        let image = render(&fg, &palette, 0);
        assert_eq!(image.dimensions(), (300, 400));
        // The opaque product is copied as is.
        assert_eq!(image.get_pixel(150, 200).0, [200, 30, 30]);
        // Just right of and below the product (light from the left) the shadow darkens the
        // floor compared with the same backdrop without a product.
        let empty = render(&RgbaImage::new(300, 400), &palette, 0);
        let shaded = image.get_pixel(230, 305).0;
        let plain = empty.get_pixel(230, 305).0;
        assert!(
            u32::from(shaded[0]) + 20 < u32::from(plain[0]),
            "{shaded:?} vs {plain:?}"
        );
        // Far from the product, nothing changes.
        assert_eq!(image.get_pixel(5, 5), empty.get_pixel(5, 5));
        // The variation differs.
        let second = render(&fg, &palette, 1);
        assert_ne!(image.get_pixel(10, 10), second.get_pixel(10, 10));
    }

    #[test]
    fn jpeg_output() {
        let fg = product(256, 300);
        let bytes = render_jpeg(&fg, &Palette::for_backdrop(&prompt("beach")), 0).unwrap();
        assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (256, 300));
    }

    #[test]
    fn large_sources_are_scaled_down() {
        let fg = DynamicImage::ImageRgba8(product(2048, 1024));
        let prepared = prepare_foreground(fg);
        assert_eq!(prepared.dimensions(), (1024, 512));
    }
}
