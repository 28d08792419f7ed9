//! The identity of an input: which image, with which options, to which destination.

use std::fmt;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::request::GenerationOptions;

/// What identifies the source image of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageIdentity {
    /// The SHA-256 of the image file's bytes: the same bytes under any name are the same image.
    Sha256([u8; 32]),
    /// A URL the service fetches, as [`ImageIdentity::of_url`] reduces it: without user,
    /// password, fragment or signing parameters, so that a re-signed link to the same image
    /// is the same input.
    Url(String),
    /// One version of an S3 object.
    S3Object {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The version's ETag, without quotes.
        etag: String,
    },
}

impl ImageIdentity {
    /// The identity of the file at `path`: the SHA-256 of its bytes, read in pieces.
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hash = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hash.update(&buffer[..read]);
        }
        Ok(ImageIdentity::Sha256(hash.finalize().into()))
    }

    /// The identity of image bytes held in memory.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        ImageIdentity::Sha256(Sha256::digest(bytes).into())
    }

    /// The identity of an image the service fetches from `url`: the URL without user,
    /// password and fragment, and without the query parameters that sign, authorise or expire
    /// a link rather than choose the image — a presigned S3, Google Cloud Storage, Azure or
    /// CloudFront link signed again is the same image. The remaining parameters keep their
    /// order.
    ///
    /// Removed: `X-Amz-*` and `X-Goog-*` (AWS SigV4, Google V4); `Signature`, `Expires`,
    /// `AWSAccessKeyId`, `GoogleAccessId`, `Policy`, `Key-Pair-Id` when the query has a
    /// `Signature` (AWS SigV2, Google V2, CloudFront); Azure's SAS parameters (`sv`, `se`, `sp`,
    /// `sig`, …) when it has a `sig`; `token` and `access_token`. Names compare without case.
    /// A text that is not a URL is kept as it is.
    pub fn of_url(url: &str) -> Self {
        let Ok(mut identity) = url::Url::parse(url.trim()) else {
            return ImageIdentity::Url(url.to_owned());
        };
        let _ = identity.set_username("");
        let _ = identity.set_password(None);
        identity.set_fragment(None);
        let names: Vec<String> = identity
            .query_pairs()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        let has = |wanted: &str| names.iter().any(|name| name == wanted);
        let (signed, sas) = (has("signature"), has("sig"));
        let kept: Vec<(String, String)> = identity
            .query_pairs()
            .filter(|(name, _)| !signs_the_link(&name.to_ascii_lowercase(), signed, sas))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if kept.is_empty() {
            identity.set_query(None);
        } else {
            identity.query_pairs_mut().clear().extend_pairs(kept);
        }
        ImageIdentity::Url(identity.into())
    }
}

/// True for a (lower-case) query parameter that signs, authorises or expires a link; `signed`
/// and `sas` say whether the query has a `signature` or a `sig` (which make the short names of
/// their schemes unambiguous).
fn signs_the_link(name: &str, signed: bool, sas: bool) -> bool {
    const SIGNED: &[&str] = &[
        "signature",
        "expires",
        "awsaccesskeyid",
        "googleaccessid",
        "policy",
        "key-pair-id",
    ];
    const AZURE_SAS: &[&str] = &[
        "sig", "sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sdd", "ses", "sip",
        "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid",
    ];
    name.starts_with("x-amz-")
        || name.starts_with("x-goog-")
        || matches!(name, "token" | "access_token")
        || (signed && SIGNED.contains(&name))
        || (sas && AZURE_SAS.contains(&name))
}

/// The ledger key of an input: a SHA-256 over a stable serialisation of its image identity,
/// its [`GenerationOptions`] and its destination, as 64 hex digits.
///
/// New options or a new image make new work; identical ones are the same input, whatever the
/// path or order they came in. The serialisation is pinned by a test: it does not change with
/// the compiler or the crate's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputKey(String);

impl InputKey {
    /// The key of `image` with `options`, written to `destination` (the CLI's output name; the
    /// Lambda's object key, which the image identity already names, so empty there).
    pub fn derive(image: &ImageIdentity, options: &GenerationOptions, destination: &str) -> Self {
        let mut hash = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            for part in [name.as_bytes(), value] {
                hash.update((part.len() as u64).to_le_bytes());
                hash.update(part);
            }
        };
        field("format", b"backdrop.input-key.1");
        match image {
            ImageIdentity::Sha256(digest) => field("image_sha256", digest),
            ImageIdentity::Url(url) => field("image_url", url.as_bytes()),
            ImageIdentity::S3Object { bucket, key, etag } => {
                field("s3_bucket", bucket.as_bytes());
                field("s3_key", key.as_bytes());
                field("s3_etag", etag.as_bytes());
            }
        }
        field("options", &options.identity());
        field("destination", destination.as_bytes());
        InputKey(hex(&hash.finalize()))
    }

    /// A key read back from storage (64 lower-case hex digits), or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| InputKey(text.to_owned()))
    }

    /// The 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InputKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchSize;

    #[test]
    fn keys_are_pinned_and_follow_every_part() {
        let options = GenerationOptions::prompt("a beach").unwrap();
        let image = ImageIdentity::of_bytes(b"png bytes");
        let key = InputKey::derive(&image, &options, "mug");
        // Pinned: a change here re-creates every input recorded under the old keys.
        assert_eq!(
            key.as_str(),
            "cee217f858fc38307e80d6baf690a30c94a8794ec4907843e4fdefbd5cb5dc86"
        );
        assert_eq!(InputKey::parse(key.as_str()), Some(key.clone()));
        let others = [
            InputKey::derive(
                &image,
                &options.clone().with_batch_size(BatchSize::One),
                "mug",
            ),
            InputKey::derive(&image, &options, "cup"),
            InputKey::derive(&ImageIdentity::of_bytes(b"png bytes!"), &options, "mug"),
            InputKey::derive(
                &ImageIdentity::S3Object {
                    bucket: "b".into(),
                    key: "incoming/mug.png".into(),
                    etag: "e1".into(),
                },
                &options,
                "mug",
            ),
            InputKey::derive(
                &ImageIdentity::S3Object {
                    bucket: "b".into(),
                    key: "incoming/mug.png".into(),
                    etag: "e2".into(),
                },
                &options,
                "mug",
            ),
            InputKey::derive(
                &ImageIdentity::Url("https://x/mug.png".into()),
                &options,
                "mug",
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(other, &key, "variant {i}");
        }
        assert_eq!(InputKey::parse("xyz"), None);
    }

    #[test]
    fn a_url_is_identified_without_its_signature() {
        let of = ImageIdentity::of_url;
        let signed = |signature: &str, expires: &str| {
            of(&format!(
                "https://bucket.s3.amazonaws.com/mug.png?versionId=3&X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIA%2F20261207&X-Amz-Date=20261207T000000Z\
                 &X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
            ))
        };
        assert_eq!(signed("aaa", "3600"), signed("bbb", "600"));
        assert_eq!(
            signed("aaa", "3600"),
            ImageIdentity::Url("https://bucket.s3.amazonaws.com/mug.png?versionId=3".into())
        );
        assert_ne!(
            signed("aaa", "3600"),
            of("https://bucket.s3.amazonaws.com/cup.png")
        );
        assert_eq!(
            of("https://user:pw@cdn.example/p.png?sig=x&se=2026&sv=1&id=7#top"),
            ImageIdentity::Url("https://cdn.example/p.png?id=7".into())
        );
        assert_ne!(
            of("https://cdn.example/p.png?id=7"),
            of("https://cdn.example/p.png?id=8"),
            "parameters that choose the image stay"
        );
        assert_ne!(
            of("https://cdn.example/p.png?st=red&sp=2"),
            of("https://cdn.example/p.png?st=blue&sp=2"),
            "short names are signing parameters only beside a sig"
        );
        assert_eq!(
            of("https://cdn.example/p.png?Signature=1&Expires=2&AWSAccessKeyId=3"),
            of("https://cdn.example/p.png")
        );
    }

    #[test]
    fn a_file_is_identified_by_its_bytes() {
        let dir = std::env::temp_dir().join(format!("backdrop-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.png"), dir.join("b.png"));
        std::fs::write(&a, vec![7u8; 200_000]).unwrap();
        std::fs::write(&b, vec![7u8; 200_000]).unwrap();
        assert_eq!(
            ImageIdentity::of_file(&a).unwrap(),
            ImageIdentity::of_file(&b).unwrap()
        );
        assert_eq!(
            ImageIdentity::of_file(&a).unwrap(),
            ImageIdentity::of_bytes(&[7u8; 200_000])
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
