//! What to generate: the source image, the background description and the batch size.
//!
//! A [`GenerateRequest`] is built with [`GenerateRequest::builder`]; the builder refuses the
//! combinations the service refuses (no image or two, no background description or two, a
//! `batch_size` other than 1 or 2, a blank or overlong prompt) before anything is sent.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use serde::Serialize;
use url::Url;

use crate::spec;
use crate::validate::{self, ValidationError};

/// Where the source image comes from. Exactly one per request.
#[derive(Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A PNG file on disk, read when the request is sent (sent as `image_file`).
    Path(PathBuf),
    /// PNG bytes in memory (sent as `image_file`).
    Bytes {
        /// The PNG file's bytes.
        data: Bytes,
        /// The file name sent with the multipart part.
        file_name: String,
    },
    /// A URL the service downloads the image from (sent as `image_url`).
    Url(Url),
}

impl fmt::Debug for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Path(path) => f.debug_tuple("Path").field(path).finish(),
            ImageSource::Bytes { data, file_name } => f
                .debug_struct("Bytes")
                .field("len", &data.len())
                .field("file_name", file_name)
                .finish(),
            // Presigned URLs carry credentials in their query: show the origin and path only.
            ImageSource::Url(url) => f.debug_tuple("Url").field(&redact_query(url)).finish(),
        }
    }
}

/// A URL without its query string, for logs (presigned URLs carry signatures there).
pub fn redact_query(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.query().is_some() {
        shown.set_query(Some("…"));
    }
    shown.to_string()
}

/// What the generated background should show. Exactly one per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Background {
    /// A free-text prompt (English works best), 1 to 1024 characters.
    Prompt(String),
    /// A background template id from PicWish's scene_type list.
    SceneType(u32),
}

/// How many images to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum BatchSize {
    /// One image (3 credits).
    One,
    /// Two images (6 credits); the service's default.
    #[default]
    Two,
}

impl BatchSize {
    /// The number of images.
    pub const fn count(self) -> u8 {
        match self {
            BatchSize::One => 1,
            BatchSize::Two => 2,
        }
    }

    /// Credits a successful task of this size costs.
    pub fn credits(self) -> u32 {
        spec::credits_for_images(usize::from(self.count())).unwrap_or(0)
    }
}

impl TryFrom<i64> for BatchSize {
    type Error = ValidationError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(BatchSize::One),
            2 => Ok(BatchSize::Two),
            _ => Err(ValidationError::BatchSize { value }),
        }
    }
}

/// A complete, locally valid request for one background generation task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    image: ImageSource,
    background: Background,
    negative_prompt: Option<String>,
    batch_size: BatchSize,
}

impl GenerateRequest {
    /// Starts a request.
    pub fn builder() -> GenerateRequestBuilder {
        GenerateRequestBuilder::default()
    }

    /// The source image.
    pub fn image(&self) -> &ImageSource {
        &self.image
    }

    /// The background description.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// The negative prompt, if any.
    pub fn negative_prompt(&self) -> Option<&str> {
        self.negative_prompt.as_deref()
    }

    /// The number of images to generate.
    pub fn batch_size(&self) -> BatchSize {
        self.batch_size
    }
}

/// Builds a [`GenerateRequest`]; [`build`](Self::build) checks every rule.
#[derive(Debug, Default, Clone)]
pub struct GenerateRequestBuilder {
    images: Vec<ImageSource>,
    image_url_error: Option<ValidationError>,
    prompt: Option<String>,
    scene_type: Option<i64>,
    negative_prompt: Option<String>,
    batch_size: Option<i64>,
}

impl GenerateRequestBuilder {
    /// The source image is the PNG file at `path` (read when the request is sent).
    pub fn image_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.images.push(ImageSource::Path(path.into()));
        self
    }

    /// The source image is these PNG bytes.
    pub fn image_bytes(mut self, data: impl Into<Bytes>, file_name: impl Into<String>) -> Self {
        self.images.push(ImageSource::Bytes {
            data: data.into(),
            file_name: file_name.into(),
        });
        self
    }

    /// The service downloads the source image from `url` (http or https).
    pub fn image_url(mut self, url: &str) -> Self {
        match parse_image_url(url) {
            Ok(url) => self.images.push(ImageSource::Url(url)),
            Err(e) => self.image_url_error = Some(e),
        }
        self
    }

    /// Any image source.
    pub fn image(mut self, source: ImageSource) -> Self {
        self.images.push(source);
        self
    }

    /// Describe the background with a prompt.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Use a background template id instead of a prompt.
    pub fn scene_type(mut self, scene_type: i64) -> Self {
        self.scene_type = Some(scene_type);
        self
    }

    /// What the background should not contain.
    pub fn negative_prompt(mut self, negative_prompt: impl Into<String>) -> Self {
        self.negative_prompt = Some(negative_prompt.into());
        self
    }

    /// Generate 1 or 2 images (default 2).
    pub fn batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// Checks every rule and returns the request, or the first rule broken.
    pub fn build(self) -> Result<GenerateRequest, ValidationError> {
        if let Some(error) = self.image_url_error {
            return Err(error);
        }
        let mut images = self.images;
        let image = match (images.pop(), images.is_empty()) {
            (None, _) => {
                return Err(ValidationError::ImageSource {
                    found: "no source image given",
                });
            }
            (Some(_), false) => {
                return Err(ValidationError::ImageSource {
                    found: "two source images given",
                });
            }
            (Some(image), true) => image,
        };
        let background = match (self.prompt, self.scene_type) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::Background {
                    found: "both a prompt and a scene type given",
                });
            }
            (None, None) => {
                return Err(ValidationError::Background {
                    found: "neither a prompt nor a scene type given",
                });
            }
            (Some(prompt), None) => {
                validate::check_prompt(&prompt)?;
                Background::Prompt(prompt)
            }
            (None, Some(scene)) => Background::SceneType(check_scene_type(scene)?),
        };
        let negative_prompt = self.negative_prompt.filter(|n| !n.trim().is_empty());
        let batch_size = match self.batch_size {
            Some(value) => BatchSize::try_from(value)?,
            None => BatchSize::default(),
        };
        Ok(GenerateRequest {
            image,
            background,
            negative_prompt,
            batch_size,
        })
    }
}

/// Checks a scene template id: a positive integer.
pub fn check_scene_type(value: i64) -> Result<u32, ValidationError> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v > 0)
        .ok_or(ValidationError::SceneType { value })
}

/// Parses an `image_url`: absolute, http or https, with a host.
pub fn parse_image_url(raw: &str) -> Result<Url, ValidationError> {
    let invalid = |reason: &str| ValidationError::ImageUrl {
        url: raw.chars().take(200).collect(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_image_and_one_background() {
        let none = GenerateRequest::builder().prompt("a beach").build();
        assert!(matches!(none, Err(ValidationError::ImageSource { .. })));
        let two = GenerateRequest::builder()
            .image_path("a.png")
            .image_url("https://example.com/a.png")
            .prompt("a beach")
            .build();
        assert!(matches!(two, Err(ValidationError::ImageSource { .. })));
        let both = GenerateRequest::builder()
            .image_path("a.png")
            .prompt("a beach")
            .scene_type(105)
            .build();
        assert!(matches!(both, Err(ValidationError::Background { .. })));
        let neither = GenerateRequest::builder().image_path("a.png").build();
        assert!(matches!(neither, Err(ValidationError::Background { .. })));
    }

    #[test]
    fn defaults_and_limits() {
        let request = GenerateRequest::builder()
            .image_path("a.png")
            .scene_type(105)
            .build()
            .unwrap();
        assert_eq!(request.batch_size(), BatchSize::Two);
        assert_eq!(request.background(), &Background::SceneType(105));
        for bad in [0, 3, -1] {
            let result = GenerateRequest::builder()
                .image_path("a.png")
                .prompt("x")
                .batch_size(bad)
                .build();
            assert_eq!(result, Err(ValidationError::BatchSize { value: bad }));
        }
        assert!(matches!(
            GenerateRequest::builder()
                .image_path("a")
                .scene_type(0)
                .build(),
            Err(ValidationError::SceneType { value: 0 })
        ));
    }

    #[test]
    fn urls_must_be_http() {
        for bad in ["ftp://x/a.png", "not a url", "file:///etc/passwd"] {
            assert!(parse_image_url(bad).is_err(), "{bad}");
        }
        assert!(parse_image_url("https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=1").is_ok());
    }

    #[test]
    fn debug_hides_presigned_query() {
        let request = GenerateRequest::builder()
            .image_url("https://b.s3.example/a.png?X-Amz-Signature=secret")
            .prompt("p")
            .build()
            .unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn credits_follow_the_price_list() {
        assert_eq!(BatchSize::One.credits(), 3);
        assert_eq!(BatchSize::Two.credits(), 6);
    }
}
