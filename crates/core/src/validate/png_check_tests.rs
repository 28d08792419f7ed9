//! Tests of the full PNG check, on files written by the tests' own encoder (`test_png`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::test_png::{
    Encoding, Filters, Image, Rng, assemble, chunk, chunks, encode, expected_counts, filtered_data,
    fix_crc, ihdr, max_sample,
};
use super::*;

/// Feeds `bytes` in windows of `window` bytes.
fn check_windowed(
    bytes: &[u8],
    window: usize,
    rules: PixelRules,
) -> Result<PngReport, ValidationError> {
    let mut checker = PngChecker::new(bytes.len() as u64, rules)?;
    for piece in bytes.chunks(window.max(1)) {
        checker.feed(piece)?;
    }
    checker.finish()
}

/// The verdict of the full check, the same from every window size.
fn check(bytes: &[u8]) -> Result<PngReport, ValidationError> {
    let whole = check_png_bytes(bytes, PixelRules::default());
    for window in [7, 4096] {
        assert_eq!(
            check_windowed(bytes, window, PixelRules::default()),
            whole,
            "window {window}"
        );
    }
    whole
}

fn reason(result: Result<PngReport, ValidationError>) -> String {
    match result {
        Err(ValidationError::DamagedPng { reason })
        | Err(ValidationError::DamagedImageData { reason }) => reason,
        other => panic!("not damaged: {other:?}"),
    }
}

/// A 300x280 RGBA image: a transparent background around an opaque disc with a soft edge.
fn cutout(width: u32, height: u32) -> Image {
    Image::from_fn(width, height, 6, 8, |x, y| {
        let (dx, dy) = (x as i64 - width as i64 / 2, y as i64 - height as i64 / 2);
        let d2 = dx * dx + dy * dy;
        let r = (width.min(height) as i64 / 3).pow(2);
        let alpha = if d2 < r {
            255
        } else if d2 < r + 2000 {
            128
        } else {
            0
        };
        [x % 256, y % 256, 7, alpha]
    })
}

fn rgba_file() -> (Image, Vec<u8>) {
    let image = cutout(300, 280);
    let bytes = encode(&image, &Encoding::default());
    (image, bytes)
}

#[test]
fn a_cut_out_rgba_png_is_accepted_with_its_counts() {
    let (image, bytes) = rgba_file();
    let report = check(&bytes).unwrap();
    assert_eq!(report.info, inspect_png_bytes(&bytes).unwrap());
    let (t, o, p) = expected_counts(&image, None);
    assert_eq!(
        report.pixels,
        PixelCounts {
            total: 300 * 280,
            transparent: t,
            opaque: o,
            partial: p
        }
    );
    assert!(t > 0 && o > 0 && p > 0);
    assert!((report.transparent_share - t as f64 / 84000.0).abs() < 1e-12);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert!(!report.interlaced);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["pixels"]["transparent"], t);
    assert_eq!(json["info"]["width"], 300);
}

#[test]
fn every_colour_type_depth_and_interlace_is_decoded_and_counted() {
    let mut rng = Rng(0x5eed);
    let combos: [(u8, &[u8]); 5] = [
        (0, &[1, 2, 4, 8, 16]),
        (2, &[8, 16]),
        (3, &[1, 2, 4, 8]),
        (4, &[8, 16]),
        (6, &[8, 16]),
    ];
    for (color_type, depths) in combos {
        for &depth in depths {
            for interlaced in [false, true] {
                // Odd sizes: partial Adam7 blocks and sub-byte rows that end mid-byte.
                let (w, h) = (259 + rng.below(6) as u32, 257 + rng.below(5) as u32);
                let max = max_sample(depth);
                let few = u64::from(max.min(3)) + 1;
                let mut image = Image::random(w, h, color_type, depth, &mut rng);
                // Make the transparency-deciding values common enough to be counted.
                for pixel in &mut image.samples {
                    match color_type {
                        4 | 6 => {
                            let c = if color_type == 6 { 3 } else { 1 };
                            pixel[c] = match rng.below(3) {
                                0 => 0,
                                1 => max,
                                _ => pixel[c],
                            };
                        }
                        _ => {
                            for v in pixel.iter_mut() {
                                *v = (rng.below(few) as u16).min(max);
                            }
                        }
                    }
                }
                let entries = 1usize << depth.min(8);
                let mut encoding = Encoding {
                    interlaced,
                    filters: Filters::Random(rng.next()),
                    level: [0, 1, 6, 9][rng.below(4) as usize],
                    idat_size: [1, 100, 8192, 1 << 20][rng.below(4) as usize],
                    ..Encoding::default()
                };
                match color_type {
                    0 => encoding.trns = Some(vec![0, 1]),
                    2 => encoding.trns = Some(vec![0, 1, 0, 0, 0, 2]),
                    3 => {
                        encoding.palette = Some((0..entries).map(|i| [i as u8, 0, 0]).collect());
                        encoding.trns = Some(vec![0, 128, 255][..entries.min(3)].to_vec());
                    }
                    _ => {}
                }
                let bytes = encode(&image, &encoding);
                let what =
                    format!("colour {color_type} depth {depth} interlaced {interlaced} {w}x{h}");
                let report = check_png_bytes(&bytes, PixelRules::allowing_opaque())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let (t, o, p) = expected_counts(&image, encoding.trns.as_deref());
                assert_eq!(
                    (
                        report.pixels.transparent,
                        report.pixels.opaque,
                        report.pixels.partial
                    ),
                    (t, o, p),
                    "{what}"
                );
                assert_eq!(report.interlaced, interlaced);
                assert_eq!(report.pixels.total, u64::from(w) * u64::from(h));
            }
        }
    }
}

#[test]
fn every_filter_type_unfilters() {
    let mut rng = Rng(77);
    for filter in 0..5 {
        for (color_type, depth) in [(6, 8), (6, 16), (4, 8), (2, 8), (3, 2), (0, 16)] {
            let mut image = Image::random(256, 256, color_type, depth, &mut rng);
            if color_type == 3 {
                image.samples.iter_mut().for_each(|p| p[0] %= 4);
            }
            if matches!(color_type, 0 | 2) {
                image
                    .samples
                    .iter_mut()
                    .take(100)
                    .for_each(|p| *p = [5, 5, 5, 0]);
            }
            let encoding = Encoding {
                filters: Filters::All(filter),
                palette: (color_type == 3).then(|| vec![[1, 2, 3]; 4]),
                trns: match color_type {
                    3 => Some(vec![0, 255]),
                    0 => Some(vec![0, 5]),
                    2 => Some(vec![0, 5, 0, 5, 0, 5]),
                    _ => None,
                },
                ..Encoding::default()
            };
            let bytes = encode(&image, &encoding);
            let report = check_png_bytes(&bytes, PixelRules::allowing_opaque())
                .unwrap_or_else(|e| panic!("filter {filter} colour {color_type}/{depth}: {e}"));
            let (t, o, p) = expected_counts(&image, encoding.trns.as_deref());
            assert_eq!(
                (
                    report.pixels.transparent,
                    report.pixels.opaque,
                    report.pixels.partial
                ),
                (t, o, p),
                "filter {filter} colour {color_type}/{depth}"
            );
        }
    }
}

#[test]
fn the_feed_window_never_changes_the_verdict() {
    let (_, good) = rgba_file();
    let mut damaged = good.clone();
    let idat = chunks(&good).into_iter().find(|c| &c.1 == b"IDAT").unwrap();
    damaged[idat.0 + 8 + 100] ^= 0x10;
    let mut files = vec![good.clone(), damaged, good[..good.len() - 5].to_vec()];
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    files.push(trailing);
    files.push(good[..40].to_vec());
    for file in &files {
        let whole = check_png_bytes(file, PixelRules::default());
        for window in [1, 7, 4096, file.len()] {
            assert_eq!(
                check_windowed(file, window, PixelRules::default()),
                whole,
                "window {window}"
            );
        }
    }
}

#[test]
fn the_header_rules_come_first_with_their_messages() {
    let (_, good) = rgba_file();
    // Every prefix the header check refuses gets the header check's refusal.
    for cut in 0..200 {
        if let Err(header) = inspect_png_bytes(&good[..cut]) {
            assert_eq!(check(&good[..cut]).unwrap_err(), header, "cut at {cut}");
        }
    }
    // A small image: the size rule, even with damage after it.
    let small = Image::from_fn(100, 300, 6, 8, |_, _| [0, 0, 0, 0]);
    let mut bytes = encode(&small, &Encoding::default());
    let n = bytes.len();
    bytes[n - 20] ^= 1;
    assert!(matches!(
        check(&bytes),
        Err(ValidationError::ImageTooSmall { width: 100, .. })
    ));
    // RGB without tRNS: the header's no-transparency rule, whatever its pixels.
    let rgb = Image::from_fn(256, 256, 2, 8, |x, _| [x, 0, 0, 0]);
    let err = check(&encode(&rgb, &Encoding::default())).unwrap_err();
    assert_eq!(
        err,
        inspect_png_bytes(&encode(&rgb, &Encoding::default())).unwrap_err()
    );
    assert!(
        err.to_string()
            .starts_with("the PNG has no transparency: colour type 2 (RGB)")
    );
    // A damaged ancillary chunk before IDAT in a grey image without tRNS: still the header rule.
    let grey = Image::from_fn(256, 256, 0, 8, |x, _| [x, 0, 0, 0]);
    let mut bytes = encode(
        &grey,
        &Encoding {
            extra: vec![(*b"tEXt", b"Comment\0hello".to_vec())],
            ..Encoding::default()
        },
    );
    let text = chunks(&bytes)
        .into_iter()
        .find(|c| &c.1 == b"tEXt")
        .unwrap();
    bytes[text.0 + 10] ^= 1;
    assert!(matches!(
        check(&bytes),
        Err(ValidationError::NoTransparency { color_type: 0, .. })
    ));
    assert_eq!(check(b""), Err(ValidationError::EmptyFile));
    assert!(matches!(
        check(b"GIF89a...."),
        Err(ValidationError::NotPng { .. })
    ));
    assert_eq!(
        PngChecker::new(spec::MAX_IMAGE_FILE_BYTES + 1, PixelRules::default()).unwrap_err(),
        ValidationError::FileTooLarge {
            bytes: spec::MAX_IMAGE_FILE_BYTES + 1,
            max: spec::MAX_IMAGE_FILE_BYTES
        }
    );
}

#[test]
fn the_forty_byte_file_is_refused() {
    let mut bytes = super::PNG_SIGNATURE.to_vec();
    let image = Image::from_fn(300, 300, 6, 8, |_, _| [0; 4]);
    chunk(&mut bytes, b"IHDR", &ihdr(&image, false));
    bytes.extend_from_slice(b"\x00\x00\x00\x01IDA");
    assert_eq!(bytes.len(), 40);
    assert!(
        inspect_png_bytes(&bytes).is_ok(),
        "the header check alone accepts it"
    );
    let err = check(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "damaged PNG: the file ends 7 bytes into the 8-byte header of the chunk after the IHDR \
         chunk (byte 33); the file was probably cut short or corrupted while copying — re-export \
         or copy it again"
    );
}

#[test]
fn truncated_files_say_where_they_end() {
    let (_, good) = rgba_file();
    let list = chunks(&good);
    let first_idat = list.iter().find(|c| &c.1 == b"IDAT").unwrap();
    // Just after IHDR.
    let after_ihdr = check(&good[..33]).unwrap_err();
    assert!(reason(Err(after_ihdr)).contains(
        "ends after the IHDR chunk (byte 33) without an IEND chunk, and has no image data"
    ),);
    // Inside the first IDAT's data, or its CRC: the chunk runs past the end.
    let mid = first_idat.0 + 8 + 1000;
    let r = reason(check(&good[..mid]));
    let want = format!(
        "the file is cut short: the IDAT chunk at byte {} declares",
        first_idat.0
    );
    assert!(r.starts_with(&want), "{r}");
    let r = reason(check(&good[..first_idat.0 + 8 + first_idat.2 + 2]));
    assert!(
        r.starts_with(&want) && r.contains("which run 2 bytes past the end"),
        "{r}"
    );
    // A stream that stops before its declared size.
    let mut stream = PngChecker::new(good.len() as u64, PixelRules::default()).unwrap();
    stream.feed(&good[..mid]).unwrap();
    let r = reason(stream.finish());
    assert_eq!(
        r,
        format!(
            "the file is cut short: {mid} of its {} bytes arrived",
            good.len()
        )
    );
    // Every cut of the file is refused, none panics.
    for cut in (0..good.len()).step_by(97) {
        assert!(
            check_png_bytes(&good[..cut], PixelRules::default()).is_err(),
            "cut {cut}"
        );
    }
}

#[test]
fn a_missing_iend_is_refused() {
    let (_, good) = rgba_file();
    let cut = &good[..good.len() - 12];
    let r = reason(check(cut));
    assert!(
        r.contains("after the IDAT chunk") && r.contains("without an IEND chunk"),
        "{r}"
    );
}

#[test]
fn trailing_bytes_are_counted() {
    let (_, mut bytes) = rgba_file();
    bytes.extend_from_slice(&[0u8; 1234]);
    let err = check(&bytes).unwrap_err();
    assert_eq!(err, ValidationError::TrailingData { bytes: 1234 });
    assert!(
        err.to_string()
            .starts_with("the PNG goes on for 1234 bytes after its IEND chunk")
    );
}

#[test]
fn a_flipped_byte_fails_its_chunks_crc() {
    let (_, good) = rgba_file();
    let idat = chunks(&good).into_iter().find(|c| &c.1 == b"IDAT").unwrap();
    for at in [idat.0 + 8, idat.0 + 8 + idat.2 / 2, idat.0 + 5] {
        let mut bytes = good.clone();
        bytes[at] ^= 0x40;
        let r = reason(check(&bytes));
        if at == idat.0 + 5 {
            // The type itself: no longer IDAT.
            assert!(r.contains("chunk"), "{r}");
        } else {
            assert!(
                r.contains(&format!("the CRC of the IDAT chunk at byte {}", idat.0)),
                "{r}"
            );
            assert!(r.contains("the chunk is damaged"), "{r}");
        }
    }
    // The CRC itself.
    let mut bytes = good.clone();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    assert!(reason(check(&bytes)).contains("the CRC of the IEND chunk"));
}

#[test]
fn a_bad_zlib_stream_is_damaged_image_data() {
    let (_, good) = rgba_file();
    let idat = chunks(&good).into_iter().find(|c| &c.1 == b"IDAT").unwrap();
    // A bad zlib header (with a correct CRC).
    let mut bytes = good.clone();
    bytes[idat.0 + 8] = 0x79;
    fix_crc(&mut bytes, idat.0);
    let err = check(&bytes).unwrap_err();
    assert!(
        matches!(err, ValidationError::DamagedImageData { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("zlib header"), "{err}");
    assert!(
        err.to_string().starts_with("damaged PNG image data: "),
        "{err}"
    );
    // Garbage in the middle of the deflate data.
    let mut bytes = good.clone();
    for b in &mut bytes[idat.0 + 8 + 50..idat.0 + 8 + 90] {
        *b = 0xff;
    }
    fix_crc(&mut bytes, idat.0);
    assert!(matches!(
        check(&bytes),
        Err(ValidationError::DamagedImageData { .. })
    ));
}

/// A file around a raw (filtered) data stream of our making.
fn with_raw(image: &Image, raw: &[u8]) -> Vec<u8> {
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(raw, 6);
    assemble(image, &Encoding::default(), &zlib)
}

#[test]
fn a_bad_filter_byte_is_named() {
    let image = cutout(256, 256);
    let mut raw = filtered_data(&image, false, Filters::All(1));
    raw[(1 + 256 * 4) * 10] = 5;
    let r = reason(check(&with_raw(&image, &raw)));
    assert_eq!(
        r,
        "row 11 of 256 starts with filter type 5; PNG rows start with 0 to 4"
    );
}

#[test]
fn too_little_and_too_much_data_are_refused() {
    let image = cutout(256, 256);
    let raw = filtered_data(&image, false, Filters::Cycle);
    let r = reason(check(&with_raw(&image, &raw[..raw.len() - 1025])));
    assert!(
        r.contains("the zlib stream ends after 261375 of the 262400 bytes a 256x256 px RGBA image at 8 bits per sample needs (row 256 of 256)"),
        "{r}"
    );
    let mut long = raw.clone();
    long.extend_from_slice(&[0; 1025]);
    let r = reason(check(&with_raw(&image, &long)));
    assert!(r.contains("inflates to more than the 262400 bytes"), "{r}");
}

#[test]
fn an_adler32_mismatch_is_refused() {
    let image = cutout(256, 256);
    let raw = filtered_data(&image, false, Filters::Cycle);
    let mut zlib = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6);
    let n = zlib.len();
    zlib[n - 1] ^= 1;
    let r = reason(check(&assemble(&image, &Encoding::default(), &zlib)));
    assert!(r.contains("Adler-32"), "{r}");
    // The checksum missing altogether: the stream does not end.
    let r = reason(check(&assemble(
        &image,
        &Encoding::default(),
        &zlib[..n - 4],
    )));
    assert!(r.contains("does not end after the last row"), "{r}");
    // Data after the end of the zlib stream.
    let mut extra = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6);
    extra.extend_from_slice(b"more");
    let r = reason(check(&assemble(&image, &Encoding::default(), &extra)));
    assert!(r.contains("follows the end of the zlib stream"), "{r}");
}

#[test]
fn a_zip_bomb_stops_at_the_first_byte_too_many() {
    // 256x256 RGBA wants 262400 bytes; this stream inflates to 64 MiB of zeros.
    let image = cutout(256, 256);
    let zeros = vec![0u8; 64 << 20];
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 9);
    drop(zeros);
    let bytes = assemble(&image, &Encoding::default(), &zlib);
    let started = std::time::Instant::now();
    let r = reason(check_png_bytes(&bytes, PixelRules::default()));
    assert!(r.contains("inflates to more than"), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn an_opaque_rgba_image_still_has_its_background() {
    let image = Image::from_fn(300, 300, 6, 8, |x, y| [x % 256, y % 256, 0, 255]);
    let bytes = encode(&image, &Encoding::default());
    let err = check(&bytes).unwrap_err();
    assert_eq!(
        err,
        ValidationError::NothingTransparent {
            pixels: 90000,
            opaque: 90000,
            transparency: Transparency::AlphaChannel
        }
    );
    assert_eq!(
        err.to_string(),
        "every one of the 90000 pixels is opaque: the PNG has an alpha channel but the background \
         was not removed; the service needs the foreground alone on a transparent background — \
         remove the background and export again (or pass the override if you know better)"
    );
    // The override accepts it, saying what it allowed.
    let report = check_png_bytes(&bytes, PixelRules::allowing_opaque()).unwrap();
    assert_eq!(report.pixels.opaque, 90000);
    assert_eq!(report.warnings, vec![PngWarning::Overridden { rule: err }]);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["warnings"][0]["kind"], "overridden");
    // Partly transparent everywhere is not transparent either.
    let haze = Image::from_fn(300, 300, 6, 8, |x, _| {
        [0, 0, 0, if x < 10 { 128 } else { 255 }]
    });
    let err = check(&encode(&haze, &Encoding::default())).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "none of the 90000 pixels is fully transparent (87000 opaque, 3000 partly transparent)"
        ),
        "{err}"
    );
}

#[test]
fn an_all_transparent_image_has_no_foreground() {
    let image = Image::from_fn(256, 300, 6, 16, |x, _| [x, 0, 0, 0]);
    let err = check(&encode(&image, &Encoding::default())).unwrap_err();
    assert_eq!(err, ValidationError::NothingVisible { pixels: 76800 });
    assert!(
        err.to_string()
            .starts_with("every one of the 76800 pixels is fully transparent")
    );
    let report = check_png_bytes(
        &encode(&image, &Encoding::default()),
        PixelRules::allowing_opaque(),
    )
    .unwrap();
    assert_eq!(report.transparent_share, 1.0);
}

#[test]
fn sixteen_bit_alpha_is_opaque_only_at_65535() {
    let image = Image::from_fn(256, 256, 6, 16, |x, _| {
        [
            0,
            0,
            0,
            match x % 4 {
                0 => 0,
                1 => 65535,
                2 => 65534,
                _ => 255,
            },
        ]
    });
    let report = check(&encode(&image, &Encoding::default())).unwrap();
    assert_eq!(
        (
            report.pixels.transparent,
            report.pixels.opaque,
            report.pixels.partial
        ),
        (16384, 16384, 32768)
    );
}

fn palette_image(used: &[u16]) -> Image {
    Image::from_fn(256, 256, 3, 8, |x, y| {
        [used[((x + y) as usize) % used.len()], 0, 0, 0]
    })
}

#[test]
fn palette_transparency_comes_from_trns_per_index() {
    let encoding = Encoding {
        palette: Some(vec![[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]),
        trns: Some(vec![0, 255, 100]), // index 3: opaque by default
        ..Encoding::default()
    };
    // Index 0 (transparent) in use.
    let image = palette_image(&[0, 1, 2, 3]);
    let report = check(&encode(&image, &encoding)).unwrap();
    assert_eq!(
        (
            report.pixels.transparent,
            report.pixels.opaque,
            report.pixels.partial
        ),
        (16384, 32768, 16384)
    );
    assert_eq!(report.info.transparency, Transparency::TrnsChunk);
    // The transparent index exists but no pixel uses it.
    let image = palette_image(&[1, 2, 3]);
    let err = check(&encode(&image, &encoding)).unwrap_err();
    assert!(
        matches!(
            err,
            ValidationError::NothingTransparent {
                pixels: 65536,
                transparency: Transparency::TrnsChunk,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the PNG has a tRNS chunk but the background was not removed")
    );
}

#[test]
fn palette_indexes_past_the_plte_are_a_warning() {
    let encoding = Encoding {
        palette: Some(vec![[0, 0, 0], [255, 0, 0]]),
        trns: Some(vec![0]),
        ..Encoding::default()
    };
    let image = palette_image(&[0, 1, 1, 7]);
    let report = check(&encode(&image, &encoding)).unwrap();
    assert_eq!(
        report.warnings,
        vec![PngWarning::OutsidePalette {
            pixels: 16384,
            entries: 2
        }]
    );
    assert_eq!(report.pixels.opaque, 16384 * 3);
}

#[test]
fn greyscale_with_trns_is_transparent_where_it_matches() {
    let encoding = Encoding {
        trns: Some(vec![0, 7]),
        ..Encoding::default()
    };
    let image = Image::from_fn(256, 256, 0, 4, |x, _| [if x < 64 { 7 } else { 3 }, 0, 0, 0]);
    let report = check(&encode(&image, &encoding)).unwrap();
    assert_eq!(
        (report.pixels.transparent, report.pixels.opaque),
        (16384, 49152)
    );
    // A grey level the bit depth cannot hold matches nothing.
    let encoding = Encoding {
        trns: Some(vec![0, 200]),
        ..Encoding::default()
    };
    assert!(matches!(
        check(&encode(&image, &encoding)),
        Err(ValidationError::NothingTransparent { .. })
    ));
}

#[test]
fn interlaced_files_are_checked() {
    let image = cutout(301, 259);
    let encoding = Encoding {
        interlaced: true,
        ..Encoding::default()
    };
    let bytes = encode(&image, &encoding);
    let report = check(&bytes).unwrap();
    assert!(report.interlaced);
    let (t, o, p) = expected_counts(&image, None);
    assert_eq!(
        (
            report.pixels.transparent,
            report.pixels.opaque,
            report.pixels.partial
        ),
        (t, o, p)
    );
    // A bad filter byte in pass 3 is named with its pass.
    let mut raw = filtered_data(&image, true, Filters::Cycle);
    // Pass 1: 33 rows of 38 px; pass 2: 33 rows of 38 px; pass 3's first row follows.
    let pass1 = 33 * (1 + 38 * 4);
    let pass2 = 33 * (1 + 38 * 4);
    raw[pass1 + pass2] = 9;
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6);
    let r = reason(check(&assemble(&image, &encoding, &zlib)));
    assert!(
        r.starts_with("row 1 of 32 in Adam7 pass 3 starts with filter type 9"),
        "{r}"
    );
}

#[test]
fn mostly_opaque_images_pass_with_a_warning() {
    // A thin transparent border: 1 px around 1000x... here 4 px of 300x300 transparent.
    let image = Image::from_fn(300, 300, 6, 8, |x, y| {
        [0, 0, 0, if x == 0 && y < 40 { 0 } else { 255 }]
    });
    let report = check(&encode(&image, &Encoding::default())).unwrap();
    assert_eq!(
        report.warnings,
        vec![PngWarning::MostlyOpaque {
            opaque: 89960,
            transparent: 40,
            pixels: 90000
        }]
    );
    assert!(
        report.warnings[0]
            .to_string()
            .contains("check that the background was removed")
    );
    // Not below the threshold.
    let image = Image::from_fn(300, 300, 6, 8, |x, _| {
        [0, 0, 0, if x == 0 { 0 } else { 255 }]
    });
    assert!(
        check(&encode(&image, &Encoding::default()))
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn chunk_order_rules() {
    let image = cutout(256, 256);
    let raw = filtered_data(&image, false, Filters::Cycle);
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6);
    let half = zlib.len() / 2;
    let build = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut out = super::PNG_SIGNATURE.to_vec();
        chunk(&mut out, b"IHDR", &ihdr(&image, false));
        f(&mut out);
        out
    };
    let idat_split = build(&|out| {
        chunk(out, b"IDAT", &zlib[..half]);
        chunk(out, b"tEXt", b"a\0b");
        chunk(out, b"IDAT", &zlib[half..]);
        chunk(out, b"IEND", &[]);
    });
    // The tEXt ends the image data, which is incomplete by then.
    let r = reason(check(&idat_split));
    assert!(r.contains("cut short"), "{r}");
    let empty_idat_later = build(&|out| {
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"tEXt", b"a\0b");
        chunk(out, b"IDAT", &[]);
        chunk(out, b"IEND", &[]);
    });
    assert!(reason(check(&empty_idat_later)).contains("IDAT chunks are not consecutive"));
    let unknown_critical = build(&|out| {
        chunk(out, b"XYZW", b"?");
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"IEND", &[]);
    });
    assert!(reason(check(&unknown_critical)).contains("unknown critical chunk XYZW"));
    let unknown_ancillary = build(&|out| {
        chunk(out, b"xyZw", b"?");
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"IEND", &[]);
    });
    assert!(check(&unknown_ancillary).is_ok());
    let no_idat = build(&|out| chunk(out, b"IEND", &[]));
    assert!(reason(check(&no_idat)).contains("comes before any IDAT"));
    let iend_data = build(&|out| {
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"IEND", b"x");
    });
    assert!(reason(check(&iend_data)).contains("must be empty"));
    let second_ihdr = build(&|out| {
        chunk(out, b"IHDR", &ihdr(&image, false));
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"IEND", &[]);
    });
    assert!(reason(check(&second_ihdr)).contains("a second IHDR"));
    let trns_in_rgba = build(&|out| {
        chunk(out, b"tRNS", &[0, 0]);
        chunk(out, b"IDAT", &zlib);
        chunk(out, b"IEND", &[]);
    });
    assert_eq!(
        check(&trns_in_rgba).unwrap().warnings,
        vec![PngWarning::TrnsIgnored { color_type: 6 }]
    );
    let mut bad_length = no_idat.clone();
    bad_length[33..37].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    assert!(reason(check(&bad_length)).contains("over PNG's limit"));
    let mut past_end = no_idat.clone();
    past_end[33..37].copy_from_slice(&1000u32.to_be_bytes());
    assert!(reason(check(&past_end)).contains("past the end of the file"));
    let mut not_letters = no_idat.clone();
    not_letters[37] = b'1';
    assert!(reason(check(&not_letters)).contains("not four letters"));
    let mut interlace_2 = no_idat.clone();
    interlace_2[28] = 2;
    fix_crc(&mut interlace_2, 8);
    assert!(reason(check(&interlace_2)).contains("interlace method 2"));
}

#[test]
fn palette_and_trns_rules() {
    let image = palette_image(&[0, 1]);
    let raw = filtered_data(&image, false, Filters::Cycle);
    let zlib = miniz_oxide::deflate::compress_to_vec_zlib(&raw, 6);
    let build = |image: &Image, zlib: &[u8], before: &[(&[u8; 4], Vec<u8>)]| {
        let mut out = super::PNG_SIGNATURE.to_vec();
        chunk(&mut out, b"IHDR", &ihdr(image, false));
        for (kind, data) in before {
            chunk(&mut out, kind, data);
        }
        chunk(&mut out, b"IDAT", zlib);
        chunk(&mut out, b"IEND", &[]);
        out
    };
    let plte = vec![0u8, 0, 0, 9, 9, 9];
    let one = vec![0u8];
    let ok = build(
        &image,
        &zlib,
        &[(b"PLTE", plte.clone()), (b"tRNS", one.clone())],
    );
    assert!(check(&ok).is_ok());
    type Chunks<'a> = Vec<(&'a [u8; 4], Vec<u8>)>;
    let cases: Vec<(Chunks, &str)> = vec![
        (
            vec![(b"tRNS", one.clone()), (b"PLTE", plte.clone())],
            "before the PLTE",
        ),
        (vec![(b"tRNS", one.clone())], "before the PLTE"),
        (
            vec![(b"PLTE", vec![0, 0]), (b"tRNS", one.clone())],
            "1 to 256 RGB",
        ),
        (
            vec![(b"PLTE", plte.clone()), (b"tRNS", vec![0, 0, 0])],
            "at most 2",
        ),
        (
            vec![
                (b"PLTE", plte.clone()),
                (b"PLTE", plte.clone()),
                (b"tRNS", one.clone()),
            ],
            "a second PLTE",
        ),
        (
            vec![
                (b"PLTE", plte.clone()),
                (b"tRNS", one.clone()),
                (b"tRNS", one.clone()),
            ],
            "a second tRNS",
        ),
    ];
    for (before, want) in cases {
        let r = reason(check(&build(&image, &zlib, &before)));
        assert!(r.contains(want), "{want}: {r}");
    }
    // A palette image whose only chunk before IDAT is tRNS... and greyscale ones with a PLTE or a
    // tRNS of the wrong size.
    let grey = Image::from_fn(256, 256, 0, 8, |x, _| [x % 2, 0, 0, 0]);
    let zlib =
        miniz_oxide::deflate::compress_to_vec_zlib(&filtered_data(&grey, false, Filters::Cycle), 6);
    let with_plte = build(
        &grey,
        &zlib,
        &[(b"tRNS", vec![0, 0]), (b"PLTE", plte.clone())],
    );
    assert!(reason(check(&with_plte)).contains("a PLTE chunk (at byte"));
    let long_trns = build(&grey, &zlib, &[(b"tRNS", vec![0, 0, 0])]);
    assert!(reason(check(&long_trns)).contains("has 3 bytes; a greyscale image's has 2"));
    // A palette image without a PLTE: its tRNS would need one first, so the tRNS is refused.
    let no_plte = build(&image, &zlib, &[(b"tRNS", one.clone())]);
    assert!(reason(check(&no_plte)).contains("before the PLTE"));
}

#[test]
fn a_declared_size_must_match_the_bytes() {
    let (_, bytes) = rgba_file();
    // Declared longer: the file goes on after its IEND.
    let mut longer = PngChecker::new(bytes.len() as u64 + 10, PixelRules::default()).unwrap();
    assert_eq!(
        longer.feed(&bytes),
        Err(ValidationError::TrailingData { bytes: 10 })
    );
    let mut shorter = PngChecker::new(bytes.len() as u64 - 10, PixelRules::default()).unwrap();
    let err = shorter.feed(&bytes).unwrap_err();
    // Its IEND is past the declared end: the last chunk runs past the end of the file.
    assert!(matches!(err, ValidationError::DamagedPng { .. }), "{err}");
    assert_eq!(shorter.feed(b"x").unwrap_err(), err, "refusals stick");
    let mut exact_then_more = PngChecker::new(bytes.len() as u64, PixelRules::default()).unwrap();
    exact_then_more.feed(&bytes).unwrap();
    assert!(reason(Err(exact_then_more.feed(b"x").unwrap_err())).contains("more than the"));
}

#[test]
fn the_drivers_agree() {
    let (_, bytes) = rgba_file();
    let dir = std::env::temp_dir().join(format!("backdrop-png-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("cutout.png");
    std::fs::write(&path, &bytes).unwrap();
    let from_bytes = check_png_bytes(&bytes, PixelRules::default()).unwrap();
    assert_eq!(
        check_png_file(&path, PixelRules::default()).unwrap(),
        from_bytes
    );
    let reader = std::io::BufReader::with_capacity(1000, &bytes[..]);
    assert_eq!(
        check_png_reader(reader, bytes.len() as u64, PixelRules::default()).unwrap(),
        from_bytes
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let from_async = runtime
        .block_on(check_png_async_read(
            &bytes[..],
            bytes.len() as u64,
            PixelRules::default(),
        ))
        .unwrap();
    assert_eq!(from_async, from_bytes);
    assert!(matches!(
        check_png_file(&dir.join("missing.png"), PixelRules::default()),
        Err(InspectFileError::Io(_))
    ));
    // The header fast path stays what it was.
    assert_eq!(inspect_png_file(&path).unwrap(), from_bytes.info);
    std::fs::remove_dir_all(&dir).ok();
}

/// Counts the pixels of a PNG through the `png` crate's decoder (expanded to 8- or 16-bit
/// samples with an alpha channel where the file has transparency).
fn counts_by_png_crate(bytes: &[u8]) -> (u64, u64, u64) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (color, depth) = reader.output_color_type();
    let channels = color.samples();
    let sixteen = depth == png::BitDepth::Sixteen;
    let bytes_per_sample = if sixteen { 2 } else { 1 };
    let (mut t, mut o, mut p) = (0, 0, 0);
    for row in buf[..info.buffer_size()].chunks(info.line_size) {
        for pixel in row
            .chunks(channels * bytes_per_sample)
            .take(info.width as usize)
        {
            let alpha = match color {
                png::ColorType::Rgba | png::ColorType::GrayscaleAlpha if sixteen => {
                    let n = pixel.len();
                    u32::from(u16::from_be_bytes([pixel[n - 2], pixel[n - 1]]))
                }
                png::ColorType::Rgba | png::ColorType::GrayscaleAlpha => {
                    u32::from(pixel[pixel.len() - 1]) * 257
                }
                _ => 65535,
            };
            match alpha {
                0 => t += 1,
                65535 => o += 1,
                _ => p += 1,
            }
        }
    }
    (t, o, p)
}

#[test]
fn counts_agree_with_the_png_crate_on_random_images() {
    let mut rng = Rng(0xdec0de);
    for round in 0..12 {
        let (color_type, depth) = [
            (6, 8),
            (6, 16),
            (4, 8),
            (4, 16),
            (3, 8),
            (3, 4),
            (0, 8),
            (2, 8),
            (2, 16),
            (0, 2),
        ][rng.below(10) as usize];
        let (w, h) = (256 + rng.below(40) as u32, 256 + rng.below(40) as u32);
        let mut image = Image::random(w, h, color_type, depth, &mut rng);
        let max = max_sample(depth);
        for pixel in &mut image.samples {
            match color_type {
                6 => pixel[3] = [0, max, pixel[3]][rng.below(3) as usize],
                4 => pixel[1] = [0, max, pixel[1]][rng.below(3) as usize],
                3 => pixel[0] %= 5,
                _ => {
                    for v in pixel.iter_mut() {
                        *v = (*v).min(1);
                    }
                }
            }
        }
        let encoding = Encoding {
            interlaced: rng.below(2) == 1,
            filters: Filters::Random(rng.next()),
            palette: (color_type == 3).then(|| (0..5).map(|i| [i * 40, 0, 0]).collect()),
            trns: match (color_type, depth) {
                (3, _) => Some(vec![0, 90, 255]),
                (0, _) => Some(vec![0, 1]),
                (2, _) => Some(vec![0, 1, 0, 0, 0, 1]),
                _ => None,
            },
            ..Encoding::default()
        };
        let bytes = encode(&image, &encoding);
        let report = check_png_bytes(&bytes, PixelRules::allowing_opaque())
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            (
                report.pixels.transparent,
                report.pixels.opaque,
                report.pixels.partial
            ),
            counts_by_png_crate(&bytes),
            "round {round}: colour {color_type}/{depth} interlaced {}",
            encoding.interlaced
        );
    }
}

#[test]
fn the_report_displays_in_one_line() {
    let (_, bytes) = rgba_file();
    let report = check(&bytes).unwrap();
    let shown = report.to_string();
    assert!(shown.starts_with("PNG 300x280 px, RGBA (8-bit)"), "{shown}");
    assert!(
        shown.contains("% of the pixels fully transparent"),
        "{shown}"
    );
}
