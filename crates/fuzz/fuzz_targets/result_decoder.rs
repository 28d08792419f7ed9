//! The result field decoder: `image_1` / `image_2` as an http(s) URL, a `data:` URI or raw base64.
//!
//! Checked, beyond "no panic":
//! - the input read as a field: inline bytes never exceed the cap, the capped and uncapped
//!   readings agree (the capped one refuses exactly what decodes past the cap), decoded bytes are
//!   at most 3/4 of the text, and a URL is always http(s);
//! - the input as an image: encoded in each base64 alphabet, with or without padding, raw, as a
//!   `data:` URI, or wrapped in lines, it decodes back to itself; a cap of its length lets it
//!   through and a cap one byte smaller refuses it.
#![no_main]

use backdrop_core::{ImageFormat, ResultLocation};
use base64::Engine;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;

/// The cap of the field checks (small, so the fuzzer can reach it).
const CAP: usize = 1024;

const ENGINES: [&GeneralPurpose; 4] = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD];

fuzz_target!(|data: &[u8]| {
    if let Ok(field) = std::str::from_utf8(data) {
        check_field(field);
    }
    round_trip(data);
});

fn check_field(field: &str) {
    let uncapped = ResultLocation::parse(field);
    let capped = ResultLocation::parse_capped(field, CAP);
    match &uncapped {
        Ok(ResultLocation::Url(url)) => {
            assert!(matches!(url.scheme(), "http" | "https"), "{url}");
            assert_eq!(capped, uncapped);
        }
        Ok(ResultLocation::Inline(bytes)) => {
            assert!(
                bytes.len() <= field.len() / 4 * 3 + 2,
                "{} from {}",
                bytes.len(),
                field.len()
            );
            let _ = ImageFormat::sniff(bytes);
            if bytes.len() <= CAP {
                assert_eq!(capped, uncapped);
            } else {
                assert!(
                    capped.is_err(),
                    "{} bytes passed a {CAP}-byte cap",
                    bytes.len()
                );
            }
        }
        Err(error) => {
            assert!(!error.0.is_empty());
            assert!(capped.is_err());
        }
    }
    if let Ok(ResultLocation::Inline(bytes)) = &capped {
        assert!(bytes.len() <= CAP);
    }
}

fn round_trip(image: &[u8]) {
    for engine in ENGINES {
        let text = engine.encode(image);
        let wrapped: Vec<&str> = text
            .as_bytes()
            .chunks(76)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        for field in [
            text.clone(),
            format!("data:image/png;base64,{text}"),
            format!(" \n{}\r\n", wrapped.join("\r\n")),
        ] {
            let expected = Ok(ResultLocation::Inline(image.to_vec().into()));
            assert_eq!(ResultLocation::parse(&field), expected, "{field}");
            assert_eq!(ResultLocation::parse_capped(&field, image.len()), expected);
            if !image.is_empty() {
                assert!(ResultLocation::parse_capped(&field, image.len() - 1).is_err());
            }
        }
    }
}
