//! `png-check`: the full PNG check ([`backdrop_core::validate::check_png_file`]) on the largest
//! file the service takes, against the header-only check, with the memory it holds.
//!
//! Writes a 4096×4096 RGBA PNG of about 20 MB to a temporary folder (an opaque ellipse of noisy
//! colours on a transparent background, with a soft edge: noise so that it hardly compresses,
//! encoded by the `png` crate with its default settings), then prints, each the median of
//! `--runs` runs after one warm-up:
//!
//! - the full check of the file (read through the page cache), and of the same bytes in memory;
//! - the header-only check ([`backdrop_core::validate::inspect_png_file`]);
//! - the peak of the bytes allocated during one full check, above what was allocated before it
//!   (a counting global allocator);
//! - inflating the file's zlib stream alone, with fdeflate (the checker's inflater), with
//!   miniz_oxide's streaming inflater and with zlib-rs (through flate2), for the choice of
//!   inflater.
//!
//! ```sh
//! cargo run --release -p backdrop-bench --bin png-check
//! cargo run --release -p backdrop-bench --bin png-check -- --runs 21 --keep
//! ```
//!
//! `--filter paeth --noise 7` times the slowest filter to undo on every row (the default encoder
//! picks Paeth for some rows only).
//!
//! Targets: full check ≤ 150 ms, extra memory ≤ 1 MiB, header-only ≤ 1 ms.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backdrop_core::validate::{PixelRules, check_png_bytes, check_png_file, inspect_png_file};
use clap::Parser;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Time the full PNG check against the header-only one.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Timed runs of each measurement (the median is printed).
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// Width and height of the image.
    #[arg(long, default_value_t = 4096)]
    side: u32,
    /// Each colour sample of the foreground gets a uniform noise of 0 to this value.
    #[arg(long, default_value_t = 8)]
    noise: u8,
    /// The encoder's row filters: adaptive (its default), none, sub, up, avg or paeth (Paeth is
    /// the slowest to undo).
    #[arg(long, default_value = "adaptive", value_parser = ["adaptive", "none", "sub", "up", "avg", "paeth"])]
    filter: String,
    /// Seed of the noise.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Folder for the image (default: a new folder in the system's temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the image afterwards.
    #[arg(long)]
    keep: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("backdrop-png-check-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("noisy-{}-{}.png", args.side, args.filter));
    let result = measure(&path, &args);
    if args.keep {
        println!("  kept {}", path.display());
    } else {
        std::fs::remove_file(&path).ok();
        if args.dir.is_none() {
            std::fs::remove_dir(&dir).ok();
        }
    }
    result
}

/// Writes the image at `path` and prints the measurements.
fn measure(path: &Path, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    write_image(path, args)?;
    let bytes = std::fs::read(path)?;
    println!(
        "png-check: {} ({} bytes, {:.1} MB, {} filters; written in {:.1} s)",
        path.display(),
        bytes.len(),
        bytes.len() as f64 / 1e6,
        args.filter,
        started.elapsed().as_secs_f64()
    );

    let rules = PixelRules::default();
    let report = check_png_file(path, rules).map_err(|error| {
        format!(
            "the generated image is refused ({error}); timing a refusal means nothing — lower \
             --noise (7 keeps a 4096 px image of fixed filters under 20 MiB)"
        )
    })?;
    println!("  verdict: {report}");
    if !report.warnings.is_empty() {
        for warning in &report.warnings {
            println!("  warning: {warning}");
        }
    }

    let full_file = median(args.runs, || {
        let _ = check_png_file(path, rules);
    });
    let full_memory = median(args.runs, || {
        let _ = check_png_bytes(&bytes, rules);
    });
    let header = median(args.runs.max(101), || {
        let _ = inspect_png_file(path);
    });
    let peak_full = counting::peak_during(|| {
        let _ = check_png_file(path, rules);
    });
    let peak_memory = counting::peak_during(|| {
        let _ = check_png_bytes(&bytes, rules);
    });
    let peak_header = counting::peak_during(|| {
        let _ = inspect_png_file(path);
    });
    let zlib = zlib_stream(&bytes);
    let inflated = inflate_fdeflate(&zlib);
    let fdeflate_time = median(args.runs, || {
        inflate_fdeflate(&zlib);
    });
    let miniz_time = median(args.runs, || {
        inflate_miniz(&zlib);
    });
    let inflated_by_miniz = inflate_miniz(&zlib);
    let zlib_rs_time = median(args.runs, || {
        inflate_zlib_rs(&zlib);
    });
    let inflated_by_zlib_rs = inflate_zlib_rs(&zlib);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("  medians of {} runs:", args.runs);
    println!(
        "  full check, file:       {:8.1} ms   (target <= 150 ms)",
        ms(full_file)
    );
    println!("  full check, in memory:  {:8.1} ms", ms(full_memory));
    println!(
        "  header-only check:      {:8.3} ms   (target <= 1 ms; median of {})",
        ms(header),
        args.runs.max(101)
    );
    println!(
        "  peak extra memory, full check of the file:   {:7} bytes ({:.0} KiB; target <= 1 MiB)",
        peak_full,
        peak_full as f64 / 1024.0
    );
    println!(
        "  peak extra memory, full check in memory:     {:7} bytes ({:.0} KiB)",
        peak_memory,
        peak_memory as f64 / 1024.0
    );
    println!("  peak extra memory, header-only check:        {peak_header:7} bytes");
    let agree = |length: u64| {
        if length == inflated {
            ""
        } else {
            " (a different length!)"
        }
    };
    println!(
        "  inflate only ({} bytes of zlib data to {inflated} bytes): fdeflate {:.1} ms, \
         miniz_oxide {:.1} ms{}, zlib-rs {:.1} ms{}",
        zlib.len(),
        ms(fdeflate_time),
        ms(miniz_time),
        agree(inflated_by_miniz),
        ms(zlib_rs_time),
        agree(inflated_by_zlib_rs)
    );

    Ok(())
}

/// The median duration of `runs` calls of `f`, after one warm-up call.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Writes the benchmark image: an opaque ellipse of noisy colours with a soft edge on a
/// transparent background, by the `png` crate's default encoder (adaptive filters, balanced
/// compression).
fn write_image(path: &Path, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let side = args.side as usize;
    let mut rng = args.seed | 1;
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let noise = u64::from(args.noise) + 1;
    let mut data = vec![0u8; side * side * 4];
    let (c, r) = (side as f64 / 2.0, side as f64 * 0.45);
    for (y, row) in data.chunks_exact_mut(side * 4).enumerate() {
        for (x, pixel) in row.chunks_exact_mut(4).enumerate() {
            let (dx, dy) = ((x as f64 - c) / r, (y as f64 - c) / r);
            let d = (dx * dx + dy * dy).sqrt();
            if d > 1.0 {
                continue;
            }
            let alpha = if d > 0.995 { 128 } else { 255 };
            let bits = next();
            let base = [(x * 200 / side) as u64, (y * 200 / side) as u64, 90];
            for (k, sample) in pixel[..3].iter_mut().enumerate() {
                *sample = (base[k] + ((bits >> (16 * k)) & 0xffff) % noise) as u8;
            }
            pixel[3] = alpha;
        }
    }
    let file = BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, args.side, args.side);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_filter(match args.filter.as_str() {
        "none" => png::Filter::NoFilter,
        "sub" => png::Filter::Sub,
        "up" => png::Filter::Up,
        "avg" => png::Filter::Avg,
        "paeth" => png::Filter::Paeth,
        _ => png::Filter::Adaptive,
    });
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&data)?;
    writer.finish()?;
    Ok(())
}

/// The data of a PNG's IDAT chunks, in order: its zlib stream.
fn zlib_stream(png: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let end = (at + 8 + length).min(png.len());
        if &png[at + 4..at + 8] == b"IDAT" {
            out.extend_from_slice(&png[at + 8..end]);
        }
        at += 12 + length;
    }
    out
}

/// Inflates a zlib stream fed in 64 KiB pieces into a 128 KiB buffer keeping a 32 KiB window,
/// as the checker does; returns the inflated length.
fn inflate_fdeflate(zlib: &[u8]) -> u64 {
    const WINDOW: usize = 32 * 1024;
    let mut inflater = Box::new(fdeflate::Decompressor::new());
    let mut out = vec![0u8; 128 * 1024];
    let (mut filled, mut total) = (0usize, 0u64);
    for piece in zlib.chunks(64 * 1024) {
        let mut input = piece;
        loop {
            if filled == out.len() {
                out.copy_within(filled - WINDOW.., 0);
                filled = WINDOW;
            }
            let Ok((used, written)) = inflater.read(input, &mut out, filled, false) else {
                return total;
            };
            input = &input[used..];
            filled += written;
            total += written as u64;
            if inflater.is_done() || (input.is_empty() && filled < out.len()) {
                break;
            }
        }
    }
    while !inflater.is_done() {
        if filled == out.len() {
            out.copy_within(filled - WINDOW.., 0);
            filled = WINDOW;
        }
        match inflater.read(&[], &mut out, filled, true) {
            Ok((_, 0)) | Err(_) => break,
            Ok((_, written)) => {
                filled += written;
                total += written as u64;
            }
        }
    }
    total
}

/// The same with miniz_oxide's streaming inflater (which keeps its own window) into a 96 KiB
/// buffer.
fn inflate_miniz(zlib: &[u8]) -> u64 {
    use miniz_oxide::inflate::stream::{InflateState, inflate};
    use miniz_oxide::{DataFormat, MZFlush, MZStatus};
    let mut state = InflateState::new_boxed(DataFormat::Zlib);
    let mut out = vec![0u8; 96 * 1024];
    let mut total = 0u64;
    let mut input = zlib;
    loop {
        let piece = &input[..input.len().min(64 * 1024)];
        let result = inflate(&mut state, piece, &mut out, MZFlush::None);
        input = &input[result.bytes_consumed..];
        total += result.bytes_written as u64;
        match result.status {
            Ok(MZStatus::StreamEnd) => return total,
            _ if result.bytes_consumed == 0 && result.bytes_written == 0 => return total,
            _ => {}
        }
    }
}

/// The same with zlib-rs through flate2's streaming `Decompress` into a 96 KiB buffer.
fn inflate_zlib_rs(zlib: &[u8]) -> u64 {
    use flate2::{Decompress, FlushDecompress, Status};
    let mut inflater = Decompress::new(true);
    let mut out = vec![0u8; 96 * 1024];
    let mut input = zlib;
    loop {
        let piece = &input[..input.len().min(64 * 1024)];
        let (in_before, out_before) = (inflater.total_in(), inflater.total_out());
        let status = inflater.decompress(piece, &mut out, FlushDecompress::None);
        let used = (inflater.total_in() - in_before) as usize;
        input = &input[used..];
        match status {
            Ok(Status::StreamEnd) | Err(_) => return inflater.total_out(),
            _ if used == 0 && inflater.total_out() == out_before => return inflater.total_out(),
            _ => {}
        }
    }
}

/// A global allocator that counts the bytes allocated, for the peak of one call.
mod counting {
    // The only unsafe code of the workspace outside dependencies: a GlobalAlloc must be an
    // `unsafe impl`, and it forwards each call unchanged to the system allocator.
    #![allow(unsafe_code)]

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CURRENT: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    /// The system allocator, counting.
    pub struct Counting;

    fn grew(bytes: usize) {
        let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    fn shrank(bytes: usize) {
        CURRENT.fetch_sub(bytes, Ordering::Relaxed);
    }

    // SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
    // GlobalAlloc contract; the counters are plain atomics and never touch the memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller's layout is passed on as received.
            let pointer = unsafe { System.alloc(layout) };
            if !pointer.is_null() {
                grew(layout.size());
            }
            pointer
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as above.
            let pointer = unsafe { System.alloc_zeroed(layout) };
            if !pointer.is_null() {
                grew(layout.size());
            }
            pointer
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
            // SAFETY: the caller guarantees `pointer` came from this allocator with `layout`.
            unsafe { System.dealloc(pointer, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller's guarantees are passed on as received.
            let moved = unsafe { System.realloc(pointer, layout, new_size) };
            if !moved.is_null() {
                shrank(layout.size());
                grew(new_size);
            }
            moved
        }
    }

    /// The highest number of bytes allocated while `f` ran, above those allocated before it.
    pub fn peak_during(f: impl FnOnce()) -> usize {
        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        f();
        PEAK.load(Ordering::Relaxed) - before
    }
}
