//! The full PNG check: `PngChecker` (and `check_png_bytes`) down to the image data.
//!
//! The first byte picks what the rest is:
//! - `0`: a file, as is;
//! - `1`: a file whose chunk CRCs are recomputed first, so that mutations of its chunks reach the
//!   chunk rules and the image data instead of stopping at a CRC;
//! - `2`: a recipe: a few bytes choose an IHDR (colour type, bit depth, interlacing, 256–263 px
//!   sides), a palette and a tRNS chunk, and the rest, repeated, fills the rows (filter bytes and
//!   pixels), which are stored in a zlib stream of stored blocks with a correct Adler-32, in IDAT
//!   chunks with correct CRCs — so the unfiltering and the pixel counts run on every input.
//!
//! Checked, beyond "no panic":
//! - feeding the checker in windows of any size gives exactly the verdict of feeding it at once
//!   (two window sizes per input, picked from its bytes: 1, 7 or 13, and 61 or 4096);
//! - a file the header check refuses gets exactly the header check's refusal;
//! - an accepted file's header is the header check's, and its pixel counts add up to
//!   width × height;
//! - a recipe whose rows all have valid filter types and whose data has exactly the size the IHDR
//!   calls for is never refused for its structure or its data (only, at most, by a pixel rule),
//!   and is accepted when the pixel rules are overridden.
#![no_main]

use backdrop_core::validate::{
    PNG_SIGNATURE, PixelRules, PngChecker, PngReport, ValidationError, check_png_bytes,
    inspect_png_bytes,
};
use libfuzzer_sys::fuzz_target;

/// Small windows: single bytes, less than a chunk header, an odd size.
const SMALL_WINDOWS: [usize; 3] = [1, 7, 13];
/// Large windows: an odd size past a chunk header, a typical read.
const LARGE_WINDOWS: [usize; 2] = [61, 4096];

/// Files longer than this (recipes of wide pixels, up to 550 KB) get no window under 61 bytes.
const SMALL_WINDOWS_MAX: usize = 16 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (file, clean) = match mode % 3 {
        0 => (rest.to_vec(), false),
        1 => (fix_crcs(rest), false),
        _ => match synthesize(rest) {
            Some(recipe) => recipe,
            None => return,
        },
    };
    // Every image holds at least 256x256 pixels, so each check decodes 64 K pixels or more: one
    // small and one large window per input (picked from its bytes) keep executions fast while
    // the corpus covers every window.
    let pick = data
        .iter()
        .fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    let small = if file.len() > SMALL_WINDOWS_MAX {
        LARGE_WINDOWS[0]
    } else {
        SMALL_WINDOWS[pick % SMALL_WINDOWS.len()]
    };
    let large = LARGE_WINDOWS[(pick / 3) % LARGE_WINDOWS.len()];
    let whole = check(&file, PixelRules::default(), [small, large]);
    if clean {
        match whole {
            Ok(_)
            | Err(ValidationError::NothingTransparent { .. })
            | Err(ValidationError::NothingVisible { .. }) => {}
            Err(other) => panic!("a well-formed recipe is refused: {other}"),
        }
        let allowed = check_png_bytes(&file, PixelRules::allowing_opaque());
        assert!(allowed.is_ok(), "a well-formed recipe is refused: {allowed:?}");
    }
});

fn check(
    file: &[u8],
    rules: PixelRules,
    windows: [usize; 2],
) -> Result<PngReport, ValidationError> {
    let whole = check_png_bytes(file, rules);
    for window in windows {
        assert_eq!(
            windowed(file, window, rules),
            whole,
            "window {window} disagrees with the whole file"
        );
    }
    match (&whole, inspect_png_bytes(file)) {
        (Ok(report), Ok(info)) => {
            assert_eq!(report.info, info);
            let p = report.pixels;
            assert_eq!(p.total, u64::from(info.width) * u64::from(info.height));
            assert_eq!(p.transparent + p.opaque + p.partial, p.total, "{report:?}");
            assert!((0.0..=1.0).contains(&report.transparent_share));
            assert!(!report.to_string().is_empty());
        }
        (Ok(report), Err(header)) => panic!("accepted {report:?}, the header check says {header}"),
        (Err(full), Err(header)) => assert_eq!(full, &header, "the header's refusal comes first"),
        (Err(full), Ok(_)) => assert!(!full.to_string().is_empty()),
    }
    whole
}

fn windowed(file: &[u8], window: usize, rules: PixelRules) -> Result<PngReport, ValidationError> {
    let mut checker = PngChecker::new(file.len() as u64, rules)?;
    for piece in file.chunks(window) {
        checker.feed(piece)?;
    }
    checker.finish()
}

/// The file with the CRC of every whole chunk recomputed.
fn fix_crcs(data: &[u8]) -> Vec<u8> {
    let mut file = data.to_vec();
    let mut at = 8usize;
    while at + 12 <= file.len() {
        let length = u32::from_be_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]) as usize;
        let Some(end) = at.checked_add(12).and_then(|e| e.checked_add(length)) else {
            break;
        };
        if end > file.len() {
            break;
        }
        let crc = crc32fast::hash(&file[at + 4..end - 4]);
        file[end - 4..end].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
    file
}

/// Colour types and bit depths PNG allows.
const COMBOS: [(u8, u8); 15] = [
    (0, 1),
    (0, 2),
    (0, 4),
    (0, 8),
    (0, 16),
    (2, 8),
    (2, 16),
    (3, 1),
    (3, 2),
    (3, 4),
    (3, 8),
    (4, 8),
    (4, 16),
    (6, 8),
    (6, 16),
];

/// A PNG from a recipe, and whether it is well-formed (valid filter types, exact data size).
fn synthesize(data: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (params, body) = (data.get(..8)?, &data[8..]);
    let (color_type, depth) = COMBOS[usize::from(params[0]) % COMBOS.len()];
    let interlaced = params[1] & 1 == 1;
    let sanitize = params[1] & 2 == 2;
    let width = 256 + u32::from(params[2] % 8);
    let height = 256 + u32::from(params[3] % 8);
    let entries = 1 + usize::from(params[4]) % (1usize << depth.min(8));
    let trns_len = usize::from(params[5]) % (entries + 1);
    // 0: exact; 1: one byte short; 2: one byte too many; more: exact.
    let size_change = params[6] % 8;
    // 16 bytes to 64 KiB (1-byte IDATs are in core's tests; here they would slow every run).
    let idat_size = 16usize << (params[7] % 13);

    let channels = match color_type {
        2 => 3,
        4 => 2,
        6 => 4,
        _ => 1,
    };
    let bits = channels * usize::from(depth);
    let mut source = body.iter().copied().cycle();
    let mut next = || source.next().unwrap_or(0);
    let mut raw = Vec::new();
    for (w, h) in passes(width, height, interlaced) {
        if w == 0 || h == 0 {
            continue;
        }
        let row_bytes = (w as usize * bits).div_ceil(8);
        for _ in 0..h {
            let filter = next();
            raw.push(if sanitize { filter % 5 } else { filter });
            for _ in 0..row_bytes {
                raw.push(next());
            }
        }
    }
    match size_change {
        1 => {
            raw.pop();
        }
        2 => raw.push(next()),
        _ => {}
    }
    let clean = sanitize && !matches!(size_change, 1 | 2);

    let mut file = PNG_SIGNATURE.to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color_type, 0, 0, u8::from(interlaced)]);
    chunk(&mut file, b"IHDR", &ihdr);
    match color_type {
        3 => {
            let palette: Vec<u8> = (0..entries * 3).map(|i| i as u8).collect();
            chunk(&mut file, b"PLTE", &palette);
            let alphas: Vec<u8> = (0..trns_len.max(1)).map(|_| next()).collect();
            chunk(&mut file, b"tRNS", &alphas);
        }
        0 | 2 => {
            let max = if depth == 16 { 0xffff } else { (1u32 << depth) - 1 };
            let key: Vec<u8> = (0..if color_type == 2 { 3 } else { 1 })
                .flat_map(|_| ((u32::from(next()) & max) as u16).to_be_bytes())
                .collect();
            chunk(&mut file, b"tRNS", &key);
        }
        _ => {}
    }
    for piece in stored_zlib(&raw).chunks(idat_size) {
        chunk(&mut file, b"IDAT", piece);
    }
    chunk(&mut file, b"IEND", &[]);
    Some((file, clean))
}

/// (width, height) of the image, or of Adam7's seven passes.
fn passes(width: u32, height: u32, interlaced: bool) -> Vec<(u32, u32)> {
    if !interlaced {
        return vec![(width, height)];
    }
    let size = |n: u32, start: u32, step: u32| if n > start { (n - start).div_ceil(step) } else { 0 };
    [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        .iter()
        .map(|&(x0, y0, dx, dy)| (size(width, x0, dx), size(height, y0, dy)))
        .collect()
}

/// A zlib stream of stored deflate blocks.
fn stored_zlib(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65535).collect() };
    let last = blocks.len() - 1;
    for (i, block) in blocks.into_iter().enumerate() {
        out.push(u8::from(i == last));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}
