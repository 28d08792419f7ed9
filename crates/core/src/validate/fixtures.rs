//! PNG fixtures made in code, each with the verdict the full check must give: damaged files
//! (cut after the header, cut inside the image data, a flipped byte, no `IEND`, bytes after
//! `IEND`, a broken zlib stream), pixel-rule refusals (every pixel opaque, every pixel
//! transparent, a `tRNS` whose transparent index is never used) and valid files of every kind the
//! others are not (palette and greyscale with `tRNS`, 16 bits, Adam7). The adapters' tests — the
//! CLI, the C ABI, the Lambda — run each through their path and expect the same verdict with no
//! request sent. Enabled by the `test-support` feature.

use super::ValidationError;
use super::test_png::{Encoding, Filters, Image, assemble, chunks, encode};

/// The side of every fixture (the service accepts 256 to 4096 px).
const SIDE: u32 = 300;

/// A rule a fixture breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The file's structure: cut short, a bad CRC, no `IEND` ([`ValidationError::DamagedPng`]).
    DamagedPng,
    /// Bytes after `IEND` ([`ValidationError::TrailingData`]).
    TrailingData,
    /// The compressed image data ([`ValidationError::DamagedImageData`]).
    DamagedImageData,
    /// Nothing transparent: the background was not removed
    /// ([`ValidationError::NothingTransparent`]).
    NothingTransparent,
    /// Nothing visible ([`ValidationError::NothingVisible`]).
    NothingVisible,
}

impl Rule {
    /// True when `error` is this rule's.
    pub fn matches(self, error: &ValidationError) -> bool {
        matches!(
            (self, error),
            (Rule::DamagedPng, ValidationError::DamagedPng { .. })
                | (Rule::TrailingData, ValidationError::TrailingData { .. })
                | (
                    Rule::DamagedImageData,
                    ValidationError::DamagedImageData { .. }
                )
                | (
                    Rule::NothingTransparent,
                    ValidationError::NothingTransparent { .. }
                )
                | (Rule::NothingVisible, ValidationError::NothingVisible { .. })
        )
    }

    /// True for the pixel rules, which an override (`allow_opaque`) turns into warnings.
    pub fn is_pixel_rule(self) -> bool {
        matches!(self, Rule::NothingTransparent | Rule::NothingVisible)
    }
}

/// One fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A file name for it, `<name>.png`.
    pub name: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
    /// `None` when the file is valid, else the rule it breaks.
    pub refused_by: Option<Rule>,
}

/// Every fixture.
pub fn all() -> Vec<Fixture> {
    let cutout = rgba(|inside| if inside { 255 } else { 0 });
    let valid = encode(&cutout, &Encoding::default());
    let idat_at = chunks(&valid)
        .into_iter()
        .find(|(_, kind, _)| kind == b"IDAT")
        .map_or(33, |(offset, _, _)| offset);
    let mut fixtures = vec![
        fixture("valid-rgba", valid.clone(), None),
        // The 40 bytes of the issue: signature, IHDR (300×300 RGBA), 7 stray bytes.
        fixture(
            "truncated-after-ihdr",
            [&valid[..33], &[0u8, 0, 0, 9, b'I', b'D', b'A'][..]].concat(),
            Some(Rule::DamagedPng),
        ),
        fixture(
            "truncated-mid-idat",
            valid[..idat_at + 8 + 100].to_vec(),
            Some(Rule::DamagedPng),
        ),
        fixture(
            "flipped-byte",
            {
                let mut bytes = valid.clone();
                bytes[idat_at + 8 + 50] ^= 0x5a;
                bytes
            },
            Some(Rule::DamagedPng),
        ),
        fixture(
            "missing-iend",
            valid[..valid.len() - 12].to_vec(),
            Some(Rule::DamagedPng),
        ),
        fixture(
            "trailing-garbage",
            [&valid[..], b"GIF89a and other stray bytes"].concat(),
            Some(Rule::TrailingData),
        ),
        fixture(
            "bad-zlib-stream",
            // A zlib header that promises a deflate stream, then bytes that are none.
            assemble(
                &cutout,
                &Encoding::default(),
                &[0x78, 0x9c, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37],
            ),
            Some(Rule::DamagedImageData),
        ),
        fixture(
            "rgba-all-opaque",
            encode(&rgba(|_| 255), &Encoding::default()),
            Some(Rule::NothingTransparent),
        ),
        fixture(
            "rgba-all-transparent",
            encode(&rgba(|_| 0), &Encoding::default()),
            Some(Rule::NothingVisible),
        ),
    ];
    // Palette: index 0 transparent (the background), 1 and 2 opaque.
    let palette = Encoding {
        palette: Some(vec![[0, 0, 0], [200, 40, 40], [40, 40, 200]]),
        trns: Some(vec![0]),
        ..Encoding::default()
    };
    let indexed = |background: u16| {
        Image::from_fn(SIDE, SIDE, 3, 8, |x, y| {
            [if disc(x, y) { 1 + (x % 2) } else { background }, 0, 0, 0]
        })
    };
    fixtures.push(fixture(
        "palette-trns-used",
        encode(&indexed(0), &palette),
        None,
    ));
    fixtures.push(fixture(
        "palette-trns-unused",
        encode(&indexed(2), &palette),
        Some(Rule::NothingTransparent),
    ));
    // Greyscale with a transparent grey (7): the background.
    let grey = Image::from_fn(SIDE, SIDE, 0, 8, |x, y| {
        [if disc(x, y) { 180 } else { 7 }, 0, 0, 0]
    });
    fixtures.push(fixture(
        "grey-trns",
        encode(
            &grey,
            &Encoding {
                trns: Some(vec![0, 7]),
                ..Encoding::default()
            },
        ),
        None,
    ));
    let deep = Image::from_fn(SIDE, SIDE, 6, 16, |x, y| {
        let alpha = if disc(x, y) { 65_535 } else { 0 };
        [x * 200, y * 200, 30_000, alpha]
    });
    fixtures.push(fixture(
        "rgba-16bit",
        encode(&deep, &Encoding::default()),
        None,
    ));
    fixtures.push(fixture(
        "rgba-adam7",
        encode(
            &cutout,
            &Encoding {
                interlaced: true,
                filters: Filters::Random(13),
                ..Encoding::default()
            },
        ),
        None,
    ));
    fixtures
}

fn fixture(name: &'static str, bytes: Vec<u8>, refused_by: Option<Rule>) -> Fixture {
    Fixture {
        name,
        bytes,
        refused_by,
    }
}

/// True inside the product: a disc in the middle.
fn disc(x: u16, y: u16) -> bool {
    let (dx, dy) = (i32::from(x) - 150, i32::from(y) - 150);
    dx * dx + dy * dy < 100 * 100
}

/// A 300×300 RGBA image: a disc of product with `alpha(true)`, a background with `alpha(false)`.
fn rgba(alpha: impl Fn(bool) -> u16) -> Image {
    Image::from_fn(SIDE, SIDE, 6, 8, |x, y| {
        let inside = disc(x, y);
        [x % 256, y % 256, 90, alpha(inside)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{PixelRules, check_png_bytes, inspect_png_bytes};

    #[test]
    fn every_fixture_gets_its_verdict() {
        let fixtures = all();
        assert_eq!(fixtures.len(), 14);
        for fixture in &fixtures {
            let verdict = check_png_bytes(&fixture.bytes, PixelRules::default());
            match (fixture.refused_by, &verdict) {
                (None, Ok(report)) => assert!(report.pixels.transparent > 0, "{}", fixture.name),
                (Some(rule), Err(error)) => {
                    assert!(rule.matches(error), "{}: {error}", fixture.name)
                }
                _ => panic!("{}: {verdict:?}", fixture.name),
            }
            // The pixel rules give way to the override; nothing else does.
            let overridden = check_png_bytes(&fixture.bytes, PixelRules::allowing_opaque());
            assert_eq!(
                overridden.is_ok(),
                fixture.refused_by.is_none_or(Rule::is_pixel_rule),
                "{}",
                fixture.name
            );
        }
        // The header check alone lets every damaged file and every pixel refusal through: the
        // reason for the full check.
        let header_refuses: Vec<&str> = fixtures
            .iter()
            .filter(|f| f.refused_by.is_some() && inspect_png_bytes(&f.bytes).is_err())
            .map(|f| f.name)
            .collect();
        assert_eq!(header_refuses, Vec::<&str>::new());
    }
}
