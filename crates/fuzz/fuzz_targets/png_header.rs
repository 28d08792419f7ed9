//! The PNG header validator: `inspect_png_bytes` and the `PngHeaderReader` step API.
//!
//! The input is a file. Checked, beyond "no panic":
//! - an accepted PNG has both sides within 256..=4096 px, a byte count equal to the input's
//!   length, a valid colour type and bit depth, and transparency that matches its colour type;
//! - the verdict agrees with a small independent model of the rules (signature, 13-byte IHDR,
//!   dimensions, alpha colour types, then chunk headers up to tRNS / IDAT / IEND);
//! - feeding the reader from windows of any size (as the Lambda does from S3 ranged GETs) gives
//!   exactly the answer of feeding it from memory;
//! - the reader never asks for bytes past the end of the file, its reads move forward, and it
//!   ends within the chunk limit;
//! - an object shorter than its declared size (cut while being read) is accepted only when the
//!   bytes present are a valid header, never read past.
#![no_main]

use backdrop_core::validate::{
    PNG_SIGNATURE, PngHeaderReader, PngInfo, PngStep, Transparency, ValidationError,
    inspect_png_bytes,
};
use libfuzzer_sys::fuzz_target;

/// The largest object the validator accepts (20 MiB).
const MAX_FILE: u64 = 20 * 1024 * 1024;

/// Window sizes the reader is fed from: single bytes, less than a chunk header, exactly one,
/// the IHDR's end, and the Lambda's usual prefix.
const WINDOWS: [usize; 7] = [1, 7, 8, 13, 33, 64, 4096];

fuzz_target!(|data: &[u8]| {
    let whole = inspect_png_bytes(data);
    match &whole {
        Ok(info) => check_info(info, data.len() as u64),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    assert_eq!(
        verdict(&whole),
        reference(data),
        "model disagrees on {data:?}"
    );

    for window in WINDOWS {
        let windowed = drive(data, data.len() as u64, window);
        assert_eq!(windowed, whole, "window {window} disagrees with memory");
    }

    // The object is declared larger than what arrives: the same header must be found or refused.
    if !data.is_empty() {
        for declared in [data.len() as u64 + 1, (data.len() as u64 * 2).min(MAX_FILE)] {
            if declared <= data.len() as u64 {
                continue;
            }
            let cut = drive(data, declared, 64);
            match (&whole, &cut) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(b.file_size, declared);
                    assert_eq!(
                        (a.width, a.height, a.color_type, a.bit_depth, a.transparency),
                        (b.width, b.height, b.color_type, b.bit_depth, b.transparency)
                    );
                }
                (Err(_), Err(_)) => {}
                _ => panic!("declared {declared}: {whole:?} vs {cut:?}"),
            }
        }
    }
});

fn check_info(info: &PngInfo, len: u64) {
    assert!((256..=4096).contains(&info.width), "{info:?}");
    assert!((256..=4096).contains(&info.height), "{info:?}");
    assert_eq!(info.file_size, len);
    let depth_ok = match info.color_type {
        0 => matches!(info.bit_depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(info.bit_depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(info.bit_depth, 8 | 16),
        _ => false,
    };
    assert!(depth_ok, "{info:?}");
    let alpha = matches!(info.color_type, 4 | 6);
    assert_eq!(
        info.transparency == Transparency::AlphaChannel,
        alpha,
        "{info:?}"
    );
    assert!(!info.to_string().is_empty());
}

/// Drives the step API over `data` as an object of `declared` bytes, fetched in windows of at
/// least `window` bytes (a window is re-fetched when the next read falls outside it).
fn drive(data: &[u8], declared: u64, window: usize) -> Result<PngInfo, ValidationError> {
    fn fetch(data: &[u8], offset: u64, len: usize) -> &[u8] {
        let start = usize::try_from(offset).unwrap().min(data.len());
        let end = start.saturating_add(len).min(data.len());
        &data[start..end]
    }
    let mut reader = PngHeaderReader::new(declared)?;
    let mut step = reader.first_step();
    let (mut window_start, mut bytes) = (0u64, fetch(data, 0, window));
    let mut last_offset = None;
    let mut steps = 0;
    loop {
        match step {
            PngStep::Done(info) => return Ok(info),
            PngStep::Need { offset, len } => {
                steps += 1;
                assert!(steps <= 4096 + 2, "the reader does not end");
                assert!(len > 0);
                assert!(
                    offset + len as u64 <= declared,
                    "asks past the end: {offset}+{len}"
                );
                assert!(
                    last_offset.is_none_or(|last| offset > last),
                    "reads go backwards"
                );
                last_offset = Some(offset);
                let end = offset + len as u64;
                if offset < window_start || end > window_start + bytes.len() as u64 {
                    window_start = offset;
                    bytes = fetch(data, offset, window.max(len));
                }
                let from = usize::try_from(offset - window_start)
                    .unwrap()
                    .min(bytes.len());
                let to = (from + len).min(bytes.len());
                step = reader.feed(&bytes[from..to])?;
            }
        }
    }
}

/// What a file is, by the rules alone.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted { width: u32, height: u32, trns: bool },
    Empty,
    NotPng,
    Corrupt,
    TooSmall,
    TooLarge,
    NoTransparency,
    Other,
}

fn verdict(result: &Result<PngInfo, ValidationError>) -> Verdict {
    match result {
        Ok(info) => Verdict::Accepted {
            width: info.width,
            height: info.height,
            trns: info.transparency == Transparency::TrnsChunk,
        },
        Err(ValidationError::EmptyFile) => Verdict::Empty,
        Err(ValidationError::NotPng { .. }) => Verdict::NotPng,
        Err(ValidationError::CorruptPng { .. }) => Verdict::Corrupt,
        Err(ValidationError::ImageTooSmall { .. }) => Verdict::TooSmall,
        Err(ValidationError::ImageTooLarge { .. }) => Verdict::TooLarge,
        Err(ValidationError::NoTransparency { .. }) => Verdict::NoTransparency,
        Err(_) => Verdict::Other,
    }
}

/// An independent reading of the rules, written for this target.
fn reference(d: &[u8]) -> Verdict {
    let be = |at: usize| u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    if d.is_empty() {
        return Verdict::Empty;
    }
    let n = d.len().min(8);
    if d[..n] != PNG_SIGNATURE[..n] {
        return Verdict::NotPng;
    }
    if d.len() < 33 || be(8) != 13 || &d[12..16] != b"IHDR" {
        return Verdict::Corrupt;
    }
    let (width, height, depth, color) = (be(16), be(20), d[24], d[25]);
    let depths: &[u8] = match color {
        0 => &[1, 2, 4, 8, 16],
        3 => &[1, 2, 4, 8],
        2 | 4 | 6 => &[8, 16],
        _ => &[],
    };
    if width == 0 || height == 0 || !depths.contains(&depth) {
        return Verdict::Corrupt;
    }
    if width < 256 || height < 256 {
        return Verdict::TooSmall;
    }
    if width > 4096 || height > 4096 {
        return Verdict::TooLarge;
    }
    if color == 4 || color == 6 {
        return Verdict::Accepted {
            width,
            height,
            trns: false,
        };
    }
    let (mut at, mut skipped) = (33usize, 0);
    loop {
        if at + 8 > d.len() {
            return Verdict::Corrupt;
        }
        match &d[at + 4..at + 8] {
            b"tRNS" => {
                return Verdict::Accepted {
                    width,
                    height,
                    trns: true,
                };
            }
            b"IDAT" | b"IEND" => return Verdict::NoTransparency,
            _ => {
                skipped += 1;
                if skipped > 4096 {
                    return Verdict::Corrupt;
                }
                at += 12 + be(at) as usize;
            }
        }
    }
}
