//! The committed header `include/backdrop.h` must be exactly what the pinned cbindgen generates
//! from this crate with `cbindgen.toml`.
//!
//! `BACKDROP_BLESS=1 cargo test -p backdrop-ffi --test header` rewrites the header.

// Test code: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]
// Sets two environment variables once, for the cargo that cbindgen starts.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn header_path() -> PathBuf {
    crate_dir().join("../../include/backdrop.h")
}

/// The header cbindgen generates from this crate, generated once for the tests of this file.
fn generate(crate_dir: &Path) -> String {
    static GENERATED: OnceLock<String> = OnceLock::new();
    GENERATED
        .get_or_init(|| {
            // The result codes are declared by a macro, so cbindgen reads the crate after
            // expansion (`[parse.expand]` in cbindgen.toml): it runs `cargo rustc --
            // -Zunpretty=expanded`, which stable rustc allows with RUSTC_BOOTSTRAP=1. Both
            // variables are set here, once, for the cargo that cbindgen starts; the expansion
            // builds in a folder of its own so that it never invalidates the regular builds.
            // SAFETY: set inside the OnceLock: no other thread of this binary reads or writes
            // the environment while it runs (the other test waits on the lock).
            unsafe {
                std::env::set_var("RUSTC_BOOTSTRAP", "1");
                std::env::set_var(
                    "CARGO_EXPAND_TARGET_DIR",
                    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cbindgen-expand"),
                );
            }
            let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
                .expect("crates/ffi/cbindgen.toml is a valid cbindgen configuration");
            let bindings = cbindgen::Builder::new()
                .with_crate(crate_dir)
                .with_config(config)
                .generate()
                .expect("cbindgen generates the header");
            let mut out = Vec::new();
            bindings.write(&mut out);
            String::from_utf8(out).expect("the header is UTF-8")
        })
        .clone()
}

/// The first differences between two texts, line by line, for the failure message.
fn describe_difference(committed: &str, generated: &str) -> String {
    let old: Vec<&str> = committed.lines().collect();
    let new: Vec<&str> = generated.lines().collect();
    let first = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    let mut report = format!(
        "committed: {} lines, generated: {} lines; first difference at line {}:\n",
        old.len(),
        new.len(),
        first + 1
    );
    let start = first.saturating_sub(3);
    for line in start..(first + 12).min(old.len().max(new.len())) {
        let (a, b) = (old.get(line), new.get(line));
        if a == b {
            report.push_str(&format!("   {:5} | {}\n", line + 1, a.unwrap_or(&"")));
        } else {
            if let Some(a) = a {
                report.push_str(&format!("-  {:5} | {a}\n", line + 1));
            }
            if let Some(b) = b {
                report.push_str(&format!("+  {:5} | {b}\n", line + 1));
            }
        }
    }
    report
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let generated = generate(&crate_dir());
    let path = header_path();
    if std::env::var_os("BACKDROP_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("include/backdrop.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/backdrop.h is not what cbindgen generates from crates/ffi.\n{}\n\
         Regenerate it with: BACKDROP_BLESS=1 cargo test -p backdrop-ffi --test header\n\
         (and commit the new header together with the change of the Rust API).",
        describe_difference(&committed, &generated)
    );
}

#[test]
fn the_header_is_a_c_header_with_cpp_guards_and_no_test_hooks() {
    let generated = generate(&crate_dir());
    for needed in [
        "#ifndef BACKDROP_H",
        "extern \"C\" {",
        "typedef struct backdrop_client backdrop_client;",
        "BACKDROP_ERR_PANIC = 7600",
        // Every fallible call returns the enum's typedef (a uint32_t in C11, the enum with a
        // uint32_t underlying type in C23 and C++); callbacks and counts keep their types.
        "backdrop_result backdrop_client_wait(",
        "backdrop_result backdrop_error_code(",
        "typedef uint32_t (*backdrop_progress_callback)",
        "size_t backdrop_task_result_count(",
        "size_t backdrop_result_message(uint32_t result,",
        "const char *backdrop_result_name(uint32_t result);",
        // A named struct, so that it can be forward-declared.
        "typedef struct backdrop_png_info {",
        "fork()",
    ] {
        assert!(generated.contains(needed), "the header lacks {needed:?}");
    }
    assert!(!generated.contains("backdrop_test_panic"));
    assert!(!generated.contains("uintptr_t"), "usize must be size_t");
    // No fallible function returns a bare code any more.
    let bare: Vec<&str> = generated
        .lines()
        .filter(|line| line.starts_with("uint32_t backdrop_"))
        .collect();
    assert!(bare.is_empty(), "functions returning uint32_t: {bare:?}");
}
