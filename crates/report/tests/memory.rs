//! Thumbnails in bounded memory: how much the process's peak resident memory grows while one is
//! made, for the largest source the service accepts (4096×4096 RGBA, 8 and 16 bits) and a
//! full-size generated image (a 1024 px JPEG). Linux only (the peak is read from
//! `/proc/self/status` after resetting it through `/proc/self/clear_refs`); `--nocapture` prints
//! the figures README quotes. One test function, so that nothing else runs in the process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufReader, Cursor};

use backdrop_report::thumbnail;

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The growth of the peak resident set while `work` runs, in bytes (`None` where the kernel
/// cannot reset the peak).
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, Option<usize>) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status_bytes("VmRSS:");
    let value = work();
    let peak = status_bytes("VmHWM:");
    let growth = match (reset, base, peak) {
        (true, Some(base), Some(peak)) => Some(peak.saturating_sub(base)),
        _ => None,
    };
    (value, growth)
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A `side`×`side` RGBA PNG (8 or 16 bits) with a transparent border, written to a file.
fn big_png(side: u32, sixteen: bool) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "backdrop-report-memory-{side}-{sixteen}-{}.png",
        std::process::id()
    ));
    let file = std::fs::File::create(&path).unwrap();
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), side, side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(if sixteen {
        png::BitDepth::Sixteen
    } else {
        png::BitDepth::Eight
    });
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder
        .write_header()
        .unwrap()
        .into_stream_writer()
        .unwrap();
    let bytes_per_pixel = if sixteen { 8 } else { 4 };
    let mut row = vec![0u8; side as usize * bytes_per_pixel];
    for y in 0..side {
        for x in 0..side {
            let inside = (x as i64 - side as i64 / 2).pow(2) + (y as i64 - side as i64 / 2).pow(2)
                < (side as i64 / 3).pow(2);
            let pixel = [
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if inside { 255 } else { 0 },
            ];
            let at = x as usize * bytes_per_pixel;
            if sixteen {
                for (i, value) in pixel.iter().enumerate() {
                    row[at + 2 * i] = *value;
                    row[at + 2 * i + 1] = *value;
                }
            } else {
                row[at..at + 4].copy_from_slice(&pixel);
            }
        }
        std::io::Write::write_all(&mut writer, &row).unwrap();
    }
    writer.finish().unwrap();
    path
}

#[test]
fn thumbnails_are_made_in_a_few_mib() {
    for sixteen in [false, true] {
        let path = big_png(4096, sixteen);
        let (thumb, peak) = peak_of(|| {
            let file = BufReader::new(std::fs::File::open(&path).unwrap());
            thumbnail::png_on_checkerboard(file).unwrap()
        });
        let decoded = 4096usize * 4096 * if sixteen { 8 } else { 4 };
        println!(
            "source 4096x4096 RGBA {}-bit ({:.1} MiB file, {:.0} MiB decoded): thumbnail {} bytes, \
             peak resident memory +{:.1} MiB",
            if sixteen { 16 } else { 8 },
            mib(std::fs::metadata(&path).unwrap().len() as usize),
            mib(decoded),
            thumb.len(),
            mib(peak.unwrap_or(0))
        );
        std::fs::remove_file(&path).unwrap();
        assert!(thumb.starts_with(&[0xFF, 0xD8, 0xFF]));
        if let Some(peak) = peak {
            assert!(
                peak < 8 * 1024 * 1024,
                "{:.1} MiB: the source is read row by row, never whole",
                mib(peak)
            );
        }
    }
    let image = image::RgbImage::from_fn(1024, 1024, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&image)
        .unwrap();
    drop(image);
    let (thumb, peak) = peak_of(|| thumbnail::generated_image(Cursor::new(&jpeg)).unwrap());
    println!(
        "generated 1024x1024 JPEG ({} bytes): thumbnail {} bytes, peak resident memory +{:.1} MiB",
        jpeg.len(),
        thumb.len(),
        mib(peak.unwrap_or(0))
    );
    if let Some(peak) = peak {
        assert!(peak < 16 * 1024 * 1024, "{:.1} MiB", mib(peak));
    }
    // For comparison: decoding the 16-bit source whole, as a naive thumbnail would.
    let path = big_png(4096, true);
    let (_, whole) = peak_of(|| image::open(&path).unwrap().thumbnail(240, 240));
    println!(
        "for comparison, image::open of the 16-bit source then thumbnail: +{:.1} MiB",
        mib(whole.unwrap_or(0))
    );
    std::fs::remove_file(&path).unwrap();
}
