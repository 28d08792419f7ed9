//! User metadata as S3 returns it: a value with characters outside US-ASCII comes back
//! RFC 2047-encoded (`=?UTF-8?B?5aSn55CG55+z?=`), as S3 documents for user-defined metadata.
//! [`decode`] gives the text the uploader wrote, or says why it cannot.

use base64::Engine;

/// The text of a metadata value: every RFC 2047 encoded word (`=?charset?B|Q?text?=`) decoded,
/// the white space between two adjacent encoded words dropped (RFC 2047 §6.2), the rest kept as
/// it is. Charsets: UTF-8, US-ASCII and ISO-8859-1 (Latin-1), any case. An encoded word that
/// cannot be decoded (another charset, bad Base64, bytes that are not UTF-8) is an error naming
/// it: sending the encoded text on would pay for a task with a garbled prompt.
pub fn decode(value: &str) -> Result<String, String> {
    if !value.contains("=?") {
        return Ok(value.to_owned());
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut after_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let (before, candidate) = rest.split_at(start);
        match encoded_word(candidate) {
            Some((word, len)) => {
                // White space between two encoded words is not part of the text.
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&decode_word(word)?);
                rest = &candidate[len..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
    Ok(out)
}

/// One encoded word's parts.
struct Word<'a> {
    charset: &'a str,
    encoding: &'a str,
    text: &'a str,
    whole: &'a str,
}

/// The encoded word at the start of `text` (`=?charset?encoding?encoded?=`) and its length.
fn encoded_word(text: &str) -> Option<(Word<'_>, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let encoded = &rest[..end];
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'?');
    if !plain(charset) || encoding.len() != 1 || encoded.contains(char::is_whitespace) {
        return None;
    }
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    Some((
        Word {
            charset,
            encoding,
            text: encoded,
            whole: &text[..len],
        },
        len,
    ))
}

fn decode_word(word: Word<'_>) -> Result<String, String> {
    let cannot = |why: &str| format!("the encoded word {:?} cannot be decoded: {why}", word.whole);
    // RFC 2231 lets a language follow the charset: `UTF-8*en`.
    let charset = word
        .charset
        .split('*')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let bytes = match word.encoding {
        "B" | "b" => base64::engine::general_purpose::STANDARD
            .decode(word.text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(word.text))
            .map_err(|e| cannot(&format!("bad Base64 ({e})")))?,
        "Q" | "q" => quoted(word.text).ok_or_else(|| cannot("a bad =XX escape"))?,
        other => return Err(cannot(&format!("unknown encoding {other:?} (B or Q)"))),
    };
    match charset.as_str() {
        "UTF-8" | "UTF8" => String::from_utf8(bytes).map_err(|_| cannot("its bytes are not UTF-8")),
        "US-ASCII" | "ASCII" if bytes.is_ascii() => Ok(bytes.into_iter().map(char::from).collect()),
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Ok(bytes.into_iter().map(char::from).collect()),
        other => Err(cannot(&format!(
            "the charset {other} is not one of UTF-8, US-ASCII and ISO-8859-1"
        ))),
    }
}

/// The "Q" encoding: `_` is a space, `=XX` a byte in hex.
fn quoted(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut input = text.bytes();
    while let Some(byte) = input.next() {
        match byte {
            b'_' => bytes.push(b' '),
            b'=' => {
                let high = char::from(input.next()?).to_digit(16)?;
                let low = char::from(input.next()?).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            other => bytes.push(other),
        }
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_are_kept() {
        for value in [
            "a marble countertop",
            "",
            "=? not a word",
            "x =?a?b",
            "50% off =?",
        ] {
            assert_eq!(decode(value).as_deref(), Ok(value), "{value:?}");
        }
    }

    #[test]
    fn encoded_words_are_decoded() {
        // What S3 returns for x-amz-meta-prompt: 大理石台面 (a marble countertop).
        let prompt = "大理石台面, morning light";
        let encoded = format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(prompt)
        );
        assert_eq!(decode(&encoded).as_deref(), Ok(prompt));
        assert_eq!(
            decode("=?utf-8?q?caf=C3=A9_cr=C3=A8me?=").as_deref(),
            Ok("café crème")
        );
        assert_eq!(decode("=?ISO-8859-1?Q?caf=E9?=").as_deref(), Ok("café"));
        // Words split across several encoded words: the space between them is dropped; plain
        // text around them is kept.
        assert_eq!(
            decode("=?UTF-8?B?5aSn55CG?= =?UTF-8?B?55+z?= table").as_deref(),
            Ok("大理石 table")
        );
        assert_eq!(decode("a =?UTF-8?Q?=C3=A9?= b").as_deref(), Ok("a é b"));
    }

    #[test]
    fn what_cannot_be_decoded_is_an_error_that_names_it() {
        for value in [
            "=?UTF-8?B?!!!notbase64?=",
            "=?UTF-8?Q?=ZZ?=",
            "=?UTF-8?B?/w==?=",
            "=?KOI8-R?B?wcI=?=",
            "=?UTF-8?X?abc?=",
        ] {
            let error = decode(value).unwrap_err();
            assert!(error.contains(value), "{value}: {error}");
        }
    }
}
