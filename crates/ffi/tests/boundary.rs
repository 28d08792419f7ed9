//! Every exported function runs inside the panic boundary, and every export is in the header.
//!
//! The boundary itself is tested in `src/boundary.rs` (a panic becomes `BACKDROP_ERR_PANIC`) and
//! from C in `tests/c/` (through the `test-hooks` export); this test makes sure no exported
//! function was written without it.

// Test code: a failed setup step is a failed test, so panicking on it is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

struct Export {
    file: String,
    name: String,
    body_start: String,
}

fn exports() -> Vec<Export> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .expect("src/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("a source file is readable");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[unsafe(no_mangle)]") {
            rest = &rest[at + 1..];
            let signature = rest
                .find("extern \"C\" fn ")
                .expect("no_mangle on a function");
            let after = &rest[signature + "extern \"C\" fn ".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let open = after.find("{\n").expect("a function body");
            let body_start = after[open + 1..].trim_start().chars().take(40).collect();
            found.push(Export {
                file: file.clone(),
                name,
                body_start,
            });
        }
    }
    found
}

#[test]
fn every_export_runs_inside_the_panic_boundary() {
    let exports = exports();
    assert!(exports.len() > 40, "found only {} exports", exports.len());
    let unguarded: Vec<String> = exports
        .iter()
        .filter(|e| {
            !(e.body_start.starts_with("ffi_boundary!(")
                || e.body_start.starts_with("ffi_infallible!("))
        })
        .map(|e| format!("{}: {} starts with {:?}", e.file, e.name, e.body_start))
        .collect();
    assert!(
        unguarded.is_empty(),
        "exported functions whose body is not one panic-boundary macro:\n{}",
        unguarded.join("\n")
    );
}

#[test]
fn every_export_is_declared_in_the_header_and_named_by_the_convention() {
    let header = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../include/backdrop.h"),
    )
    .expect("include/backdrop.h is readable");
    for export in exports() {
        assert!(export.name.starts_with("backdrop_"), "{}", export.name);
        if export.name == "backdrop_test_panic" {
            assert!(!header.contains(&export.name));
            continue;
        }
        assert!(
            header.contains(&format!(" {}(", export.name))
                || header.contains(&format!("*{}(", export.name)),
            "{} ({}) is not declared in include/backdrop.h",
            export.name,
            export.file
        );
    }
}
