//! The facts of PicWish's Generate Background API, written down once.
//!
//! Every path, limit, price and documented interval lives here; the client, the validator, the
//! emulator and the adapters read them from this module instead of repeating them.
//! The source is `shared/api/generate-background.md` (the spec).

use std::time::Duration;

/// The production base URL of the service.
pub const DEFAULT_BASE_URL: &str = "https://techhk.aoscdn.com";

/// The request header that carries the API key.
pub const API_KEY_HEADER: &str = "X-API-KEY";

/// `POST` here (multipart/form-data) creates a background generation task.
pub const CREATE_TASK_PATH: &str = "/api/tasks/visual/background";

/// `GET {QUERY_TASK_PATH_PREFIX}/{task_id}` returns the state and results of a task.
pub const QUERY_TASK_PATH_PREFIX: &str = "/api/tasks/visual/background";

/// Multipart field names of the create request.
pub mod field {
    /// Source image URL; excludes [`IMAGE_FILE`].
    pub const IMAGE_URL: &str = "image_url";
    /// Source image file (binary); excludes [`IMAGE_URL`].
    pub const IMAGE_FILE: &str = "image_file";
    /// Number of images to generate: 1 or 2.
    pub const BATCH_SIZE: &str = "batch_size";
    /// Background prompt; excludes [`SCENE_TYPE`].
    pub const PROMPT: &str = "prompt";
    /// Background template id; excludes [`PROMPT`].
    pub const SCENE_TYPE: &str = "scene_type";
    /// What the background should not contain.
    pub const NEGATIVE_PROMPT: &str = "negative_prompt";
}

/// Smallest accepted width and height of the source image, in pixels.
pub const MIN_IMAGE_SIDE: u32 = 256;

/// Largest accepted width and height of the source image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// Largest accepted uploaded file ("Up to 20MB"; read as 20 MiB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// Largest image the service downloads from an `image_url` ("30MB"; state -5 above it).
pub const MAX_IMAGE_URL_BYTES: u64 = 30 * 1024 * 1024;

/// Longest accepted prompt, in characters (not bytes).
pub const MAX_PROMPT_CHARS: usize = 1024;

/// Accepted values of `batch_size`.
pub const BATCH_SIZES: [u8; 2] = [1, 2];

/// `batch_size` when the request does not set it.
pub const DEFAULT_BATCH_SIZE: u8 = 2;

/// Largest side of a generated image, in pixels (the aspect ratio of the source is kept).
pub const MAX_OUTPUT_SIDE: u32 = 1024;

/// How long result image URLs stay valid after the task succeeds.
pub const RESULT_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// The documented polling interval.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The documented upper bound of polling one task.
pub const MAX_POLL_DURATION: Duration = Duration::from_secs(300);

/// The longest the service processes a task before failing it with state -8.
pub const MAX_PROCESSING_TIME: Duration = Duration::from_secs(180);

/// The default requests-per-second limit of an API key.
pub const DEFAULT_QPS: u32 = 2;

/// The value of the body's `status` field (and the HTTP status) of a successful call.
pub const STATUS_OK: u16 = 200;

/// Credits charged for a successful call that produced `images` images (price list of the spec:
/// 1 image = 3, 2 = 6, 3 = 8, 4 = 10). Returns 0 for no image, and `None` for counts the price
/// list does not cover.
pub fn credits_for_images(images: usize) -> Option<u32> {
    match images {
        0 => Some(0),
        1 => Some(3),
        2 => Some(6),
        3 => Some(8),
        4 => Some(10),
        _ => None,
    }
}

/// The documented HTTP status codes of the API, with their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpStatus {
    /// 200: the request is successful.
    Ok,
    /// 400: a parameter is missing or has an incorrect value.
    BadRequest,
    /// 401: the API key is wrong or the service is not enabled.
    Unauthorized,
    /// 404: the URL or task id does not exist.
    NotFound,
    /// 413: the uploaded file exceeds the allowed size.
    PayloadTooLarge,
    /// 429: the key's QPS limit was exceeded.
    TooManyRequests,
    /// 500: server-side exception.
    InternalServerError,
}

impl HttpStatus {
    /// Every documented status, in the spec's order.
    pub const ALL: [HttpStatus; 7] = [
        HttpStatus::Ok,
        HttpStatus::BadRequest,
        HttpStatus::Unauthorized,
        HttpStatus::NotFound,
        HttpStatus::PayloadTooLarge,
        HttpStatus::TooManyRequests,
        HttpStatus::InternalServerError,
    ];

    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            HttpStatus::Ok => 200,
            HttpStatus::BadRequest => 400,
            HttpStatus::Unauthorized => 401,
            HttpStatus::NotFound => 404,
            HttpStatus::PayloadTooLarge => 413,
            HttpStatus::TooManyRequests => 429,
            HttpStatus::InternalServerError => 500,
        }
    }

    /// The documented status with this code, if any.
    pub fn from_code(code: u16) -> Option<HttpStatus> {
        HttpStatus::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The spec's explanation of the status, with what to do about it.
    pub const fn meaning(self) -> &'static str {
        match self {
            HttpStatus::Ok => "the request is successful",
            HttpStatus::BadRequest => {
                "wrong parameter passed by the client: check whether a parameter is missing or has an incorrect value"
            }
            HttpStatus::Unauthorized => {
                "unauthorized API key: check that X-API-KEY is correct and the service is enabled"
            }
            HttpStatus::NotFound => {
                "the requested URL or resource does not exist: check that the URL or task_id is correct"
            }
            HttpStatus::PayloadTooLarge => {
                "the uploaded file exceeds the allowed size (PNG up to 20MB, 4096 x 4096)"
            }
            HttpStatus::TooManyRequests => {
                "request frequency exceeds the key's QPS limit (default 2): slow down or ask PicWish to raise it"
            }
            HttpStatus::InternalServerError => {
                "server-side exception: try again later or contact support"
            }
        }
    }
}

/// The `message` of a successful answer, as in the spec's examples.
pub const SUCCESS_MESSAGE: &str = "success";

/// The window the QPS limit counts requests in ("requests per second").
pub const QPS_WINDOW: Duration = Duration::from_secs(1);
