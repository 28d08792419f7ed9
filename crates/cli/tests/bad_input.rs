//! Every input error of `backdrop generate`, run as a user runs it: the exit code, the message
//! (the rule, the value found, what to do) and that not one request reached the service.
//!
//! Each row of the "Bad input" table in docs/reliability.md is a scenario here with its own test, and
//! `the_readme_table_matches_the_binary` runs every row of the table against the binary and
//! compares its message and exit code, so the table cannot drift from what users see.

// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use backdrop_core::spec;
use backdrop_emulator::Emulator;
use backdrop_tests::{fast_config, fast_emulator, opaque_png, transparent_png};

/// The argument replaced by a prompt of 1025 characters (2050 bytes: the limit counts characters).
const LONG_PROMPT: &str = "<1025 × é>";

/// How the command reaches the service. Every mode names the test's emulator (or nothing), never
/// the real service, and never leaves both the key and the base URL unset (that would start the
/// built-in emulator instead).
#[derive(Debug, Clone, Copy)]
enum Service {
    /// The emulator's base URL and key.
    Emulator,
    /// The emulator's base URL, no key.
    NoKey,
    /// The emulator's base URL and this key.
    Key(&'static str),
    /// The emulator's key and this base URL.
    BaseUrl(&'static str),
}

/// One input error: how to provoke it and what the binary must answer.
struct Scenario {
    /// The README row's first column.
    input: &'static str,
    /// Creates the files the command reads, in the scenario's working folder.
    setup: fn(&Path),
    /// The arguments after `backdrop`, run in the scenario's folder.
    args: &'static [&'static str],
    /// How the service is configured.
    service: Service,
    /// The exit code.
    code: i32,
    /// Parts of the message, in this order (white space squashed).
    expect: &'static [&'static str],
}

fn nothing(_: &Path) {}

/// One of core's PNG fixtures, by name.
fn png_fixture(name: &str) -> Vec<u8> {
    backdrop_core::validate::fixtures::all()
        .into_iter()
        .find(|f| f.name == name)
        .map(|f| f.bytes)
        .unwrap_or_else(|| panic!("no fixture {name}"))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            input: "not a PNG",
            setup: |dir| {
                let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F'];
                jpeg.resize(2048, 0);
                write(dir, "photo.png", &jpeg);
            },
            args: &["generate", "photo.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "photo.png",
                "not a PNG",
                "ff d8 ff e0",
                "export the image as PNG with an alpha channel",
            ],
        },
        Scenario {
            input: "empty file",
            setup: |dir| write(dir, "empty.png", b""),
            args: &["generate", "empty.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &["empty.png", "empty (0 bytes)", "export the image again"],
        },
        Scenario {
            input: "truncated PNG",
            setup: |dir| write(dir, "cut.png", &transparent_png(300, 300)[..20]),
            args: &["generate", "cut.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "cut.png",
                "damaged PNG header",
                "ends inside the IHDR chunk",
                "re-export the image as PNG",
            ],
        },
        Scenario {
            input: "corrupt PNG header",
            setup: |dir| {
                let mut png = transparent_png(300, 300);
                png[24] = 3; // bit depth 3 with colour type 6 (RGBA)
                write(dir, "bad.png", &png);
            },
            args: &["generate", "bad.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "bad.png",
                "damaged PNG header",
                "colour type 6 with bit depth 3",
                "re-export",
            ],
        },
        Scenario {
            input: "file over 20 MiB",
            setup: |dir| {
                write(dir, "huge.png", &transparent_png(300, 300));
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("huge.png"))
                    .unwrap();
                file.set_len(spec::MAX_IMAGE_FILE_BYTES + 1).unwrap();
            },
            args: &["generate", "huge.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "huge.png",
                "20971521 bytes",
                "over the limit of 20971520 bytes",
                "compress it",
            ],
        },
        Scenario {
            input: "too small",
            setup: |dir| write(dir, "tiny.png", &transparent_png(200, 400)),
            args: &["generate", "tiny.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "tiny.png",
                "200x400 px",
                "at least 256 px",
                "larger source image",
            ],
        },
        Scenario {
            input: "too large",
            setup: |dir| write(dir, "wide.png", &transparent_png(5000, 300)),
            args: &["generate", "wide.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &["wide.png", "5000x300 px", "at most 4096 px", "downscale it"],
        },
        Scenario {
            input: "no transparency",
            setup: |dir| write(dir, "opaque.png", &opaque_png(300, 300)),
            args: &["generate", "opaque.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "opaque.png",
                "no transparency",
                "colour type 2 (RGB) without a tRNS chunk",
                "remove the background",
            ],
        },
        Scenario {
            input: "file cut short",
            setup: |dir| write(dir, "half.png", &png_fixture("truncated-mid-idat")),
            args: &["generate", "half.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "half.png",
                "damaged PNG: the file is cut short",
                "past the end of the file",
                "re-export or copy it again",
            ],
        },
        Scenario {
            input: "damaged image data",
            setup: |dir| write(dir, "garbled.png", &png_fixture("bad-zlib-stream")),
            args: &["generate", "garbled.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "garbled.png",
                "damaged PNG image data",
                "re-export or copy it again",
            ],
        },
        Scenario {
            input: "bytes after the end",
            setup: |dir| write(dir, "tail.png", &png_fixture("trailing-garbage")),
            args: &["generate", "tail.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "tail.png",
                "goes on for 28 bytes after its IEND chunk",
                "cut the file after IEND",
            ],
        },
        Scenario {
            input: "background not removed",
            setup: |dir| write(dir, "studio.png", &png_fixture("rgba-all-opaque")),
            args: &["generate", "studio.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "studio.png",
                "every one of the 90000 pixels is opaque",
                "the background was not removed",
                "override",
            ],
        },
        Scenario {
            input: "nothing visible",
            setup: |dir| write(dir, "blank.png", &png_fixture("rgba-all-transparent")),
            args: &["generate", "blank.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "blank.png",
                "every one of the 90000 pixels is fully transparent",
                "no foreground",
            ],
        },
        Scenario {
            input: "prompt too long",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", LONG_PROMPT],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "1025 characters long",
                "limit of 1024 characters",
                "shorten it",
            ],
        },
        Scenario {
            input: "blank prompt",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "   "],
            service: Service::Emulator,
            code: 3,
            expect: &["the prompt is empty", "describe the background", "scene"],
        },
        Scenario {
            input: "prompt and scene both",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach", "--scene", "3"],
            service: Service::Emulator,
            code: 2,
            expect: &["--prompt", "cannot be used with", "--scene"],
        },
        Scenario {
            input: "neither prompt nor scene",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png"],
            service: Service::Emulator,
            code: 2,
            expect: &[
                "required arguments were not provided",
                "--prompt",
                "--scene",
            ],
        },
        Scenario {
            input: "batch size out of range",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach", "--batch", "3"],
            service: Service::Emulator,
            code: 3,
            expect: &["batch size 3", "must be 1 or 2"],
        },
        Scenario {
            input: "batch size not a number",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach", "--batch", "two"],
            service: Service::Emulator,
            code: 2,
            expect: &["invalid value 'two'", "--batch"],
        },
        Scenario {
            input: "scene type not a template id",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "--scene", "0"],
            service: Service::Emulator,
            code: 3,
            expect: &["scene type 0", "not a template id", "positive id"],
        },
        Scenario {
            input: "--jobs out of range",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach", "--jobs", "0"],
            service: Service::Emulator,
            code: 2,
            expect: &["invalid value '0'", "--jobs", "not in 1..=2048"],
        },
        Scenario {
            input: "--qps out of range",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach", "--qps", "0"],
            service: Service::Emulator,
            code: 2,
            expect: &["invalid value '0'", "--qps", "not in 1.."],
        },
        Scenario {
            input: "--timeout over 300 s",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &[
                "generate",
                "bottle.png",
                "-p",
                "a beach",
                "--timeout",
                "301",
            ],
            service: Service::Emulator,
            code: 2,
            expect: &["invalid value '301'", "--timeout", "not in 1..=300"],
        },
        Scenario {
            input: "missing key",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach"],
            service: Service::NoKey,
            code: 2,
            expect: &[
                "PICWISH_BASE_URL is http://127.0.0.1:",
                "PICWISH_API_KEY is not set",
                "set the key",
            ],
        },
        Scenario {
            input: "empty key",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach"],
            service: Service::Key(""),
            code: 2,
            expect: &["the API key is empty", "set PICWISH_API_KEY"],
        },
        Scenario {
            input: "key with spaces",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach"],
            service: Service::Key("my key"),
            code: 2,
            expect: &["the API key contains spaces", "copy it again"],
        },
        Scenario {
            input: "base URL not http(s)",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach"],
            service: Service::BaseUrl("ftp://techhk.aoscdn.com"),
            code: 2,
            expect: &[
                "base URL ftp://techhk.aoscdn.com/",
                "must be an http(s) URL",
            ],
        },
        Scenario {
            input: "base URL malformed",
            setup: |dir| write(dir, "bottle.png", &transparent_png(300, 300)),
            args: &["generate", "bottle.png", "-p", "a beach"],
            service: Service::BaseUrl("techhk.aoscdn.com"),
            code: 2,
            expect: &[
                "base URL \"techhk.aoscdn.com\" is not a URL",
                "use e.g. https://techhk.aoscdn.com",
            ],
        },
        Scenario {
            input: "missing file",
            setup: nothing,
            args: &["generate", "missing.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 2,
            expect: &[
                "input missing.png",
                "No such file or directory",
                "give a PNG file, a folder or an http(s) URL",
            ],
        },
        Scenario {
            input: "unreadable file",
            setup: |dir| {
                write(dir, "locked.png", &transparent_png(300, 300));
                set_mode(&dir.join("locked.png"), 0o000);
            },
            args: &["generate", "locked.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "cannot read locked.png",
                "Permission denied",
                "this user may read it",
            ],
        },
        Scenario {
            input: "file gone after listing",
            setup: |dir| {
                std::fs::create_dir_all(dir.join("shelf")).unwrap();
                std::os::unix::fs::symlink(dir.join("deleted.png"), dir.join("shelf/gone.png"))
                    .unwrap();
            },
            args: &["generate", "shelf", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "cannot read shelf/gone.png",
                "No such file or directory",
                "check that the path exists",
            ],
        },
        Scenario {
            input: "folder without PNGs",
            setup: |dir| write(dir, "shelf/notes.txt", b"not an image"),
            args: &["generate", "shelf", "-p", "a beach"],
            service: Service::Emulator,
            code: 2,
            expect: &[
                "input shelf",
                "holds no .png file",
                "give a folder of PNG files",
            ],
        },
        Scenario {
            input: "URL not http(s)",
            setup: nothing,
            args: &["generate", "ftp://example.com/mug.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 2,
            expect: &[
                "input ftp://example.com/mug.png",
                "scheme \"ftp\" cannot be used",
                "give an http(s) URL",
            ],
        },
        Scenario {
            input: "URL malformed",
            setup: nothing,
            args: &["generate", "https://exa mple.com/mug.png", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "image URL \"https://exa mple.com/mug.png\" is not usable",
                "invalid international domain name",
                "give an absolute http(s) URL",
            ],
        },
        Scenario {
            input: "URL without host",
            setup: nothing,
            args: &["generate", "https://", "-p", "a beach"],
            service: Service::Emulator,
            code: 3,
            expect: &[
                "image URL \"https://\" is not usable",
                "empty host",
                "give an absolute http(s) URL",
            ],
        },
        Scenario {
            input: "output folder unusable",
            setup: |dir| {
                write(dir, "bottle.png", &transparent_png(300, 300));
                write(dir, "results", b"a file, not a folder");
            },
            args: &[
                "generate",
                "bottle.png",
                "-p",
                "a beach",
                "--out",
                "results",
            ],
            service: Service::Emulator,
            code: 2,
            expect: &[
                "cannot use the output folder results",
                "File exists",
                "choose a folder (--out)",
            ],
        },
    ]
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn scenario(input: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.input == input)
        .unwrap_or_else(|| panic!("no scenario for {input:?}"))
}

/// A fresh working folder for one run.
fn scratch(input: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let slug: String = input
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "backdrop-bad-input-{}-{}-{slug}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the binary answered.
struct Answer {
    code: Option<i32>,
    /// stderr then stdout, white space squashed.
    text: String,
    /// False when the scenario cannot be reproduced here (file permissions do not bind root).
    reproduced: bool,
}

/// Runs a scenario's command against `emulator`.
async fn run(emulator: &Emulator, scenario: &Scenario) -> Answer {
    let dir = scratch(scenario.input);
    (scenario.setup)(&dir);
    if scenario.input == "unreadable file" && std::fs::File::open(dir.join("locked.png")).is_ok() {
        // Root reads the file anyway: running the command would create a real task.
        set_mode(&dir.join("locked.png"), 0o644);
        let _ = std::fs::remove_dir_all(&dir);
        return Answer {
            code: None,
            text: String::new(),
            reproduced: false,
        };
    }
    let args: Vec<String> = scenario
        .args
        .iter()
        .map(|a| {
            if *a == LONG_PROMPT {
                "é".repeat(spec::MAX_PROMPT_CHARS + 1)
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    let (base, key) = (emulator.base_url(), emulator.api_key().to_owned());
    let env: Vec<(&str, String)> = match scenario.service {
        Service::Emulator => vec![("PICWISH_BASE_URL", base), ("PICWISH_API_KEY", key)],
        Service::NoKey => vec![("PICWISH_BASE_URL", base)],
        Service::Key(k) => vec![("PICWISH_BASE_URL", base), ("PICWISH_API_KEY", k.into())],
        Service::BaseUrl(url) => vec![("PICWISH_BASE_URL", url.into()), ("PICWISH_API_KEY", key)],
    };
    let work = dir.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_backdrop"));
        command
            .args(&args)
            .current_dir(&work)
            .env_remove("PICWISH_API_KEY")
            .env_remove("PICWISH_BASE_URL")
            .env_remove("PICWISH_QPS")
            .env_remove("RUST_LOG")
            .envs(env);
        command.output().expect("the backdrop binary runs")
    })
    .await
    .unwrap();
    // Let the folder go even when the scenario locked a file in it.
    if dir.join("locked.png").exists() {
        set_mode(&dir.join("locked.png"), 0o644);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Answer {
        code: output.status.code(),
        text: squash(&text),
        reproduced: true,
    }
}

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when `parts` appear in `text` in this order.
fn contains_in_order<S: AsRef<str>>(text: &str, parts: &[S]) -> bool {
    let mut rest = text;
    for part in parts {
        let part = squash(part.as_ref());
        match rest.find(&part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Not one request reached the service: no create, no query, no download, no answer of any kind.
fn assert_nothing_sent(emulator: &Emulator, input: &str) {
    let counters = emulator.counters();
    assert_eq!(counters.create_requests, 0, "{input}: creates sent");
    assert_eq!(
        counters.create_requests + counters.query_requests + counters.result_downloads,
        0,
        "{input}: requests reached the service: {counters:?}"
    );
    assert!(
        counters.responses_by_status.is_empty(),
        "{input}: the service answered: {counters:?}"
    );
}

/// Runs one scenario on its own emulator and checks its code, its message and that nothing was
/// sent.
async fn check(input: &str) {
    let scenario = scenario(input);
    let emulator = fast_emulator(fast_config()).await;
    let answer = run(&emulator, &scenario).await;
    if !answer.reproduced {
        eprintln!("{input}: skipped: file permissions do not bind this user (root)");
        return;
    }
    assert_eq!(answer.code, Some(scenario.code), "{input}: {}", answer.text);
    assert!(
        contains_in_order(&answer.text, scenario.expect),
        "{input}: expected {:?} in order in: {}",
        scenario.expect,
        answer.text
    );
    assert!(
        !answer.text.contains("built-in emulator"),
        "{input}: the built-in emulator must not start: {}",
        answer.text
    );
    assert_nothing_sent(&emulator, input);
    emulator.shutdown().await;
}

macro_rules! row_tests {
    ($($name:ident => $input:literal,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                check($input).await;
            }
        )*

        /// Every scenario has its test.
        const ROW_TESTS: &[&str] = &[$($input),*];
    };
}

row_tests! {
    not_a_png => "not a PNG",
    empty_file => "empty file",
    truncated_png => "truncated PNG",
    corrupt_png_header => "corrupt PNG header",
    file_over_20_mib => "file over 20 MiB",
    too_small => "too small",
    too_large => "too large",
    no_transparency => "no transparency",
    file_cut_short => "file cut short",
    damaged_image_data => "damaged image data",
    bytes_after_the_end => "bytes after the end",
    background_not_removed => "background not removed",
    nothing_visible => "nothing visible",
    prompt_too_long => "prompt too long",
    blank_prompt => "blank prompt",
    prompt_and_scene_both => "prompt and scene both",
    neither_prompt_nor_scene => "neither prompt nor scene",
    batch_size_out_of_range => "batch size out of range",
    batch_size_not_a_number => "batch size not a number",
    scene_type_not_a_template_id => "scene type not a template id",
    jobs_out_of_range => "--jobs out of range",
    qps_out_of_range => "--qps out of range",
    timeout_over_300_s => "--timeout over 300 s",
    missing_key => "missing key",
    empty_key => "empty key",
    key_with_spaces => "key with spaces",
    base_url_not_http => "base URL not http(s)",
    base_url_malformed => "base URL malformed",
    missing_file => "missing file",
    unreadable_file => "unreadable file",
    file_gone_after_listing => "file gone after listing",
    folder_without_pngs => "folder without PNGs",
    url_not_http => "URL not http(s)",
    url_malformed => "URL malformed",
    url_without_host => "URL without host",
    output_folder_unusable => "output folder unusable",
}

#[test]
fn every_scenario_has_a_test() {
    let names: Vec<&str> = scenarios().iter().map(|s| s.input).collect();
    assert_eq!(names, ROW_TESTS);
}

/// The limit counts characters, not bytes: 1024 two-byte characters pass (checked by `validate`,
/// which sends nothing), 1025 do not.
#[test]
fn the_prompt_limit_counts_characters() {
    let bottle = backdrop_tests::fixture("bottle.png");
    let prompt = "é".repeat(spec::MAX_PROMPT_CHARS);
    assert_eq!(prompt.len(), 2 * spec::MAX_PROMPT_CHARS);
    let output = Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(["validate", bottle.to_str().unwrap(), "--prompt", &prompt])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let longer = format!("{prompt}é");
    let output = Command::new(env!("CARGO_BIN_EXE_backdrop"))
        .args(["validate", bottle.to_str().unwrap(), "--prompt", &longer])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("1025 characters"));
}

/// One row of the table in docs/reliability.md.
#[derive(Debug)]
struct Row {
    input: String,
    message: String,
    code: i32,
}

/// The rows of the table under `## Bad input` in docs/reliability.md.
fn readme_rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reliability.md"
    ))
    .expect("docs/reliability.md is readable");
    let section = readme
        .split("\n## Bad input\n")
        .nth(1)
        .expect("docs/reliability.md has a `## Bad input` section");
    let section = section.split("\n#").next().unwrap_or(section);
    let strip = |cell: &str| cell.trim().trim_matches('`').to_owned();
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and its separator
        .map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 4, "a row has 4 cells: {line}");
            Row {
                input: strip(cells[0]),
                // A `|` inside a table cell is written `\|` in Markdown.
                message: strip(cells[2]).replace("\\|", "|"),
                code: strip(cells[3])
                    .parse()
                    .unwrap_or_else(|_| panic!("exit code of {line}")),
            }
        })
        .collect()
}

/// The table in docs/reliability.md, row by row, against the binary: same exit code, same message (`…` stands
/// for a part that varies, such as a port), nothing sent; and every scenario has its row.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_table_matches_the_binary() {
    let rows = readme_rows();
    let documented: Vec<&str> = rows.iter().map(|r| r.input.as_str()).collect();
    let tested: Vec<&str> = scenarios().iter().map(|s| s.input).collect();
    assert_eq!(
        documented, tested,
        "the Bad input table of docs/reliability.md and the scenarios list the same inputs in the same order"
    );
    let emulator = fast_emulator(fast_config()).await;
    let mut drift = Vec::new();
    for row in &rows {
        let answer = run(&emulator, &scenario(&row.input)).await;
        if !answer.reproduced {
            eprintln!("{}: skipped: file permissions do not bind root", row.input);
            continue;
        }
        let parts: Vec<&str> = row.message.split('…').collect();
        if answer.code != Some(row.code) || !contains_in_order(&answer.text, &parts) {
            drift.push(format!(
                "{}: docs/reliability.md says exit {} and `{}`; the binary exits {:?} with: {}",
                row.input, row.code, row.message, answer.code, answer.text
            ));
        }
        assert_nothing_sent(&emulator, &row.input);
    }
    emulator.shutdown().await;
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}
