//! What to generate: the source image, the background description and the batch size.
//!
//! [`GenerationOptions`] is everything but the image — the part of an input's identity that
//! the CLI's flags, the Lambda's object metadata and the C ABI's request all describe. A
//! [`GenerateRequest`] is an image plus options, built with [`GenerateRequest::builder`]; both
//! refuse the combinations the service refuses (no image or two, no background description or
//! two, a `batch_size` other than 1 or 2, a blank or overlong prompt) before anything is sent.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
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
pub(crate) fn redact_query(url: &Url) -> String {
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
    /// A background template from PicWish's scene_type list.
    SceneType(SceneType),
}

/// A background template id from PicWish's scene_type list: a positive integer. Made with
/// `TryFrom`, which refuses zero, negative and oversized ids.
///
/// ```
/// use backdrop_core::SceneType;
/// let scene = SceneType::try_from(105)?;
/// assert_eq!(scene.get(), 105);
/// assert!(SceneType::try_from(0).is_err());
/// # Ok::<(), backdrop_core::validate::ValidationError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SceneType(u32);

impl SceneType {
    /// The template id.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for SceneType {
    type Error = ValidationError;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        u32::try_from(value)
            .ok()
            .filter(|id| *id > 0)
            .map(SceneType)
            .ok_or(ValidationError::SceneType { value })
    }
}

impl fmt::Display for SceneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many images to generate. Serialised as its count (1 or 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
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

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.count())
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

/// What to generate, without the image: the background (a prompt or a scene template), the
/// negative prompt and the batch size. Always locally valid.
///
/// Two inputs with the same image and equal options are the same work:
/// [`identity`](Self::identity) is the stable serialisation the task ledger hashes into input keys.
///
/// ```
/// use backdrop_core::{BatchSize, GenerationOptions};
/// let options = GenerationOptions::prompt("a marble countertop")?
///     .with_negative_prompt("people")
///     .with_batch_size(BatchSize::One);
/// assert_eq!(options.batch_size().count(), 1);
/// # Ok::<(), backdrop_core::validate::ValidationError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecordedOptions")]
pub struct GenerationOptions {
    background: Background,
    negative_prompt: Option<String>,
    batch_size: BatchSize,
}

/// Options as written by [`GenerationOptions`]'s serialisation, checked again when read back.
#[derive(Deserialize)]
struct RecordedOptions {
    background: RecordedBackground,
    #[serde(default)]
    negative_prompt: Option<String>,
    batch_size: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RecordedBackground {
    Prompt(String),
    SceneType(i64),
}

impl TryFrom<RecordedOptions> for GenerationOptions {
    type Error = ValidationError;

    fn try_from(recorded: RecordedOptions) -> Result<Self, ValidationError> {
        let background = match recorded.background {
            RecordedBackground::Prompt(prompt) => Background::Prompt(prompt),
            RecordedBackground::SceneType(scene) => {
                Background::SceneType(SceneType::try_from(scene)?)
            }
        };
        let mut options = GenerationOptions::new(background)?
            .with_batch_size(BatchSize::try_from(recorded.batch_size)?);
        if let Some(negative) = recorded.negative_prompt {
            options = options.with_negative_prompt(negative);
        }
        Ok(options)
    }
}

impl GenerationOptions {
    /// Options describing the background with `background`, checked (a prompt of 1 to 1024
    /// characters), with no negative prompt and the default batch size.
    pub fn new(background: Background) -> Result<Self, ValidationError> {
        if let Background::Prompt(prompt) = &background {
            validate::check_prompt(prompt)?;
        }
        Ok(GenerationOptions {
            background,
            negative_prompt: None,
            batch_size: BatchSize::default(),
        })
    }

    /// Options with a prompt.
    pub fn prompt(prompt: impl Into<String>) -> Result<Self, ValidationError> {
        Self::new(Background::Prompt(prompt.into()))
    }

    /// Options with a scene template.
    pub fn scene_type(scene_type: SceneType) -> Self {
        GenerationOptions {
            background: Background::SceneType(scene_type),
            negative_prompt: None,
            batch_size: BatchSize::default(),
        }
    }

    /// Sets the negative prompt; a blank one means none.
    pub fn with_negative_prompt(mut self, negative_prompt: impl Into<String>) -> Self {
        let negative_prompt = negative_prompt.into();
        self.negative_prompt = (!negative_prompt.trim().is_empty()).then_some(negative_prompt);
        self
    }

    /// Sets the number of images.
    pub fn with_batch_size(mut self, batch_size: BatchSize) -> Self {
        self.batch_size = batch_size;
        self
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

    /// A stable serialisation of the options, for identities that must not change between
    /// versions or toolchains: a format tag, then each field as its name, its length as a
    /// little-endian `u64` and its bytes (UTF-8 text, decimal numbers).
    pub fn identity(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut field = |name: &str, value: &[u8]| {
            for part in [name.as_bytes(), value] {
                out.extend_from_slice(&(part.len() as u64).to_le_bytes());
                out.extend_from_slice(part);
            }
        };
        field("format", b"backdrop.generation-options.1");
        match &self.background {
            Background::Prompt(prompt) => field("prompt", prompt.as_bytes()),
            Background::SceneType(scene) => field("scene_type", scene.to_string().as_bytes()),
        }
        if let Some(negative) = &self.negative_prompt {
            field("negative_prompt", negative.as_bytes());
        }
        field("batch_size", self.batch_size.count().to_string().as_bytes());
        out
    }
}

/// A complete, locally valid request for one background generation task: an image and the
/// [`GenerationOptions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    image: ImageSource,
    options: GenerationOptions,
    allow_opaque: bool,
}

impl GenerateRequest {
    /// Starts a request.
    pub fn builder() -> GenerateRequestBuilder {
        GenerateRequestBuilder::default()
    }

    /// A request for `image` with `options` (both already valid).
    pub fn new(image: ImageSource, options: GenerationOptions) -> Self {
        GenerateRequest {
            image,
            options,
            allow_opaque: false,
        }
    }

    /// The same request with the pixel rules of the image check overridden (see
    /// [`GenerateRequestBuilder::allow_opaque`]).
    pub fn with_allow_opaque(mut self, allow_opaque: bool) -> Self {
        self.allow_opaque = allow_opaque;
        self
    }

    /// The rules the image's pixels are checked by before it is sent.
    pub fn pixel_rules(&self) -> validate::PixelRules {
        validate::PixelRules {
            allow_opaque: self.allow_opaque,
            ..validate::PixelRules::default()
        }
    }

    /// The source image.
    pub fn image(&self) -> &ImageSource {
        &self.image
    }

    /// Everything but the image.
    pub fn options(&self) -> &GenerationOptions {
        &self.options
    }

    /// The background description.
    pub fn background(&self) -> &Background {
        self.options.background()
    }

    /// The negative prompt, if any.
    pub fn negative_prompt(&self) -> Option<&str> {
        self.options.negative_prompt()
    }

    /// The number of images to generate.
    pub fn batch_size(&self) -> BatchSize {
        self.options.batch_size()
    }
}

/// Builds a [`GenerateRequest`]; [`build`](Self::build) checks every rule.
#[derive(Debug, Default, Clone)]
pub struct GenerateRequestBuilder {
    images: Vec<ImageSource>,
    image_url_error: Option<ValidationError>,
    prompt: Option<String>,
    scene_type: Option<SceneType>,
    negative_prompt: Option<String>,
    batch_size: BatchSize,
    allow_opaque: bool,
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
        match validate::parse_image_url(url) {
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

    /// Use a background template instead of a prompt.
    pub fn scene_type(mut self, scene_type: SceneType) -> Self {
        self.scene_type = Some(scene_type);
        self
    }

    /// What the background should not contain.
    pub fn negative_prompt(mut self, negative_prompt: impl Into<String>) -> Self {
        self.negative_prompt = Some(negative_prompt.into());
        self
    }

    /// How many images to generate (default [`BatchSize::Two`]).
    pub fn batch_size(mut self, batch_size: BatchSize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sends an image file even when none of its pixels is transparent (the background was
    /// not removed) or none is visible: the full check's pixel rules become warnings. For the
    /// user who knows better; the file's structure and header rules are checked all the same.
    pub fn allow_opaque(mut self, allow_opaque: bool) -> Self {
        self.allow_opaque = allow_opaque;
        self
    }

    /// Sets the background, negative prompt and batch size from `options` (replacing any set
    /// before).
    pub fn options(mut self, options: GenerationOptions) -> Self {
        let GenerationOptions {
            background,
            negative_prompt,
            batch_size,
        } = options;
        (self.prompt, self.scene_type) = match background {
            Background::Prompt(prompt) => (Some(prompt), None),
            Background::SceneType(scene) => (None, Some(scene)),
        };
        self.negative_prompt = negative_prompt;
        self.batch_size = batch_size;
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
            (None, Some(scene)) => Background::SceneType(scene),
        };
        let mut options = GenerationOptions::new(background)?.with_batch_size(self.batch_size);
        if let Some(negative) = self.negative_prompt {
            options = options.with_negative_prompt(negative);
        }
        Ok(GenerateRequest {
            image,
            options,
            allow_opaque: self.allow_opaque,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(id: i64) -> SceneType {
        SceneType::try_from(id).unwrap()
    }

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
            .scene_type(scene(105))
            .build();
        assert!(matches!(both, Err(ValidationError::Background { .. })));
        let neither = GenerateRequest::builder().image_path("a.png").build();
        assert!(matches!(neither, Err(ValidationError::Background { .. })));
    }

    #[test]
    fn defaults_and_limits() {
        let request = GenerateRequest::builder()
            .image_path("a.png")
            .scene_type(scene(105))
            .build()
            .unwrap();
        assert_eq!(request.batch_size(), BatchSize::Two);
        assert_eq!(request.background(), &Background::SceneType(scene(105)));
        for bad in [0, 3, -1] {
            assert_eq!(
                BatchSize::try_from(bad),
                Err(ValidationError::BatchSize { value: bad })
            );
        }
        for bad in [0, -1, i64::from(u32::MAX) + 1] {
            assert_eq!(
                SceneType::try_from(bad),
                Err(ValidationError::SceneType { value: bad })
            );
        }
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
    fn option_identities_are_stable_and_tell_every_field_apart() {
        let prompt = GenerationOptions::prompt("a beach").unwrap();
        // Pinned: changing the serialisation changes every ledger key (and so the work done).
        let hex: String = prompt
            .identity()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "0600000000000000666f726d61741d000000000000006261636b64726f702e67656e65726174696f6e2d6f7074696f6e732e310600000000000000\
             70726f6d7074070000000000000061206265616368\
             0a0000000000000062617463685f73697a65010000000000000032"
        );
        let variants = [
            prompt.clone(),
            GenerationOptions::prompt("a beach!").unwrap(),
            prompt.clone().with_negative_prompt("sand"),
            prompt.clone().with_batch_size(BatchSize::One),
            GenerationOptions::scene_type(scene(7)),
            GenerationOptions::prompt("7").unwrap(),
        ];
        for (i, a) in variants.iter().enumerate() {
            for (j, b) in variants.iter().enumerate() {
                assert_eq!(i == j, a.identity() == b.identity(), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(
            prompt.clone().with_negative_prompt("  ").identity(),
            prompt.identity(),
            "a blank negative prompt is none"
        );
    }

    #[test]
    fn options_and_builder_agree() {
        let options = GenerationOptions::scene_type(scene(105))
            .with_negative_prompt("text")
            .with_batch_size(BatchSize::One);
        let request = GenerateRequest::builder()
            .image_path("a.png")
            .prompt("replaced")
            .options(options.clone())
            .build()
            .unwrap();
        assert_eq!(request.options(), &options);
        assert!(GenerationOptions::prompt(" ").is_err());
    }

    #[test]
    fn credits_follow_the_price_list() {
        assert_eq!(BatchSize::One.credits(), 3);
        assert_eq!(BatchSize::Two.credits(), 6);
    }
}
