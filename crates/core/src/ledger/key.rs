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
    /// A URL the service fetches (without credentials in its query, when it has any).
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
