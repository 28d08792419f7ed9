//! `POST /api/tasks/visual/background`: read the multipart form, check every parameter like the
//! service does, create the task.
//!
//! Parameter rules (400 with a message naming the problem, in this order): exactly one of
//! `image_url` / `image_file`; exactly one of `prompt` / `scene_type`; a prompt that is not blank
//! and at most 1024 characters; a positive integer `scene_type`; `batch_size` 1 or 2 (default 2);
//! an absolute http(s) `image_url`. Then 413 when `image_file` is over the file limit.
//!
//! A field sent with an empty value counts as absent (the spec: "the other image source parameter
//! must be empty"); a prompt of white space only is present and refused as blank. Unknown fields
//! are read and ignored; a known field sent twice is refused.
//!
//! These rules are the emulator's own reading of the spec, in its own words: none of them calls
//! `backdrop_core`'s validator (only the spec's numbers come from `backdrop_core::spec`), so a
//! client rule that drifts from the spec shows up as a disagreement in the tests that run the
//! client against the emulator.

use std::sync::Arc;

use axum::extract::multipart::{Field, MultipartError};
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use backdrop_core::spec::{self, HttpStatus, field};
use backdrop_core::{BatchSize, spec::MAX_IMAGE_FILE_BYTES};
use bytes::Bytes;

use crate::config::LostAnswer;
use serde_json::json;

use crate::app::{App, NewTask, chance, lock};
use crate::conn::ConnHandle;
use crate::http::gate::AnswerLost;
use crate::http::{SUCCESS_MESSAGE, api_error, drain, envelope};
use crate::job::Source;
use crate::render::Backdrop;

/// Longest accepted text field, in bytes (far above the prompt limit, so that an overlong prompt
/// is still counted in characters and refused with its length).
const MAX_TEXT_FIELD_BYTES: usize = 1024 * 1024;

/// The fields of a create request, as sent.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pub(crate) image_url: Option<String>,
    pub(crate) image_file: Option<Upload>,
    pub(crate) batch_size: Option<String>,
    pub(crate) prompt: Option<String>,
    pub(crate) scene_type: Option<String>,
    pub(crate) negative_prompt: Option<String>,
}

/// An uploaded file: its bytes unless it is over the limit.
#[derive(Debug)]
pub(crate) struct Upload {
    pub(crate) data: Bytes,
    pub(crate) size: u64,
}

impl Upload {
    fn too_large(&self) -> bool {
        self.size > MAX_IMAGE_FILE_BYTES
    }
}

/// Why a create request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: HttpStatus,
    pub(crate) message: String,
}

impl Refusal {
    fn bad(message: impl Into<String>) -> Self {
        Refusal {
            status: HttpStatus::BadRequest,
            message: message.into(),
        }
    }

    fn too_large(message: impl Into<String>) -> Self {
        Refusal {
            status: HttpStatus::PayloadTooLarge,
            message: message.into(),
        }
    }
}

/// The create handler (after the gate).
///
/// An accepted create may lose its answer ([`Faults::lost_answer_rate`](crate::Faults)): the
/// task is created, then the connection is cut before a byte of the answer is written.
pub(crate) async fn create(State(app): State<Arc<App>>, request: Request) -> Response {
    let limit = app.config.max_body_bytes;
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|ConnectInfo(connection)| connection.clone());
    let is_multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        drain(request.into_body(), limit).await;
        return refuse(&Refusal::bad(
            "the body must be multipart/form-data with the fields image_url or image_file, and \
             prompt or scene_type",
        ));
    }
    let multipart = match Multipart::from_request(request, &()).await {
        Ok(multipart) => multipart,
        Err(rejection) => {
            return refuse(&Refusal::bad(format!(
                "malformed multipart/form-data request: {rejection}"
            )));
        }
    };
    let form = match read_form(multipart, limit).await {
        Ok(form) => form,
        Err(refusal) => return refuse(&refusal),
    };
    match check_form(form) {
        Ok(new) => {
            let task_id = app.create_task(new);
            let faults = app.faults();
            if chance(&mut lock(&app.rng), faults.lost_answer_rate) {
                match (faults.lost_answer_as, connection) {
                    (LostAnswer::Closed, Some(connection)) => {
                        app.answer_lost(&task_id);
                        connection.kill();
                        tracing::debug!(%task_id, "fault: the create answer is lost");
                        // Never written: the connection fails on the first write.
                        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                        response.extensions_mut().insert(AnswerLost);
                        return response;
                    }
                    (LostAnswer::GatewayTimeout, _) => {
                        app.answer_lost(&task_id);
                        tracing::debug!(%task_id, "fault: the create answer is a gateway timeout");
                        return (
                            StatusCode::GATEWAY_TIMEOUT,
                            [(axum::http::header::CONTENT_TYPE, "text/html")],
                            "<html><body><h1>504 Gateway Time-out</h1></body></html>",
                        )
                            .into_response();
                    }
                    (LostAnswer::Garbled, _) => {
                        app.answer_lost(&task_id);
                        tracing::debug!(%task_id, "fault: the create answer is garbled");
                        return (
                            StatusCode::OK,
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            "{\"status\":200,\"message\":\"success\",\"data\":{\"task_",
                        )
                            .into_response();
                    }
                    (LostAnswer::Closed, None) => {}
                }
            }
            envelope(
                StatusCode::OK,
                SUCCESS_MESSAGE,
                json!({ "task_id": task_id }),
            )
        }
        Err(refusal) => refuse(&refusal),
    }
}

fn refuse(refusal: &Refusal) -> Response {
    api_error(refusal.status, Some(&refusal.message))
}

/// Reads every field of the form.
async fn read_form(mut multipart: Multipart, body_limit: usize) -> Result<Form, Refusal> {
    let mut form = Form::default();
    let body_error = |error: MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refusal::too_large(format!(
                "the request body exceeds {body_limit} bytes; the image file may be at most \
                 {MAX_IMAGE_FILE_BYTES} bytes (20MB)"
            ))
        } else {
            Refusal::bad(format!("malformed multipart/form-data body: {error}"))
        }
    };
    while let Some(mut part) = multipart.next_field().await.map_err(body_error)? {
        let name = part.name().unwrap_or_default().to_owned();
        let slot = match name.as_str() {
            field::IMAGE_FILE => {
                let upload = read_upload(&mut part).await.map_err(body_error)?;
                if form.image_file.replace(upload).is_some() {
                    return Err(repeated(&name));
                }
                continue;
            }
            field::IMAGE_URL => &mut form.image_url,
            field::BATCH_SIZE => &mut form.batch_size,
            field::PROMPT => &mut form.prompt,
            field::SCENE_TYPE => &mut form.scene_type,
            field::NEGATIVE_PROMPT => &mut form.negative_prompt,
            _ => {
                // Unknown field: read and ignore.
                while part.chunk().await.map_err(body_error)?.is_some() {}
                continue;
            }
        };
        let text = read_text(&mut part, &name).await.map_err(|e| match e {
            TextError::Body(error) => body_error(error),
            TextError::Invalid(refusal) => refusal,
        })?;
        if slot.replace(text).is_some() {
            return Err(repeated(&name));
        }
    }
    Ok(form)
}

fn repeated(name: &str) -> Refusal {
    Refusal::bad(format!("the field {name} is given more than once"))
}

/// Reads an uploaded file, keeping its bytes only while they are within the file limit.
async fn read_upload(part: &mut Field<'_>) -> Result<Upload, MultipartError> {
    let mut data = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = part.chunk().await? {
        size += chunk.len() as u64;
        if size <= MAX_IMAGE_FILE_BYTES {
            data.extend_from_slice(&chunk);
        } else if !data.is_empty() {
            data = Vec::new();
        }
    }
    Ok(Upload {
        data: Bytes::from(data),
        size,
    })
}

enum TextError {
    Body(MultipartError),
    Invalid(Refusal),
}

/// Reads a text field (UTF-8, at most [`MAX_TEXT_FIELD_BYTES`]).
async fn read_text(part: &mut Field<'_>, name: &str) -> Result<String, TextError> {
    let mut bytes = Vec::new();
    let mut too_long = false;
    while let Some(chunk) = part.chunk().await.map_err(TextError::Body)? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            too_long = true;
        } else {
            bytes.extend_from_slice(&chunk);
        }
    }
    if too_long {
        return Err(TextError::Invalid(Refusal::bad(format!(
            "the field {name} is longer than {MAX_TEXT_FIELD_BYTES} bytes"
        ))));
    }
    String::from_utf8(bytes).map_err(|_| {
        TextError::Invalid(Refusal::bad(format!(
            "the field {name} is not valid UTF-8 text"
        )))
    })
}

/// Checks the parameters in the service's order and builds the task.
pub(crate) fn check_form(form: Form) -> Result<NewTask, Refusal> {
    let image_url = form.image_url.filter(|url| !url.is_empty());
    let empty_file = form.image_file.as_ref().is_some_and(|file| file.size == 0);
    let image_file = form.image_file.filter(|file| file.size > 0);
    match (&image_url, &image_file) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad(
                "both image_url and image_file given; send exactly one source image (the other \
                 must be empty)",
            ));
        }
        (None, None) if empty_file => {
            return Err(Refusal::bad(
                "the image_file is empty (0 bytes); send a transparent PNG",
            ));
        }
        (None, None) => {
            return Err(Refusal::bad(
                "neither image_url nor image_file given; send exactly one source image",
            ));
        }
        _ => {}
    }

    let prompt = form.prompt.filter(|prompt| !prompt.is_empty());
    let scene_type = form.scene_type.filter(|scene| !scene.is_empty());
    let backdrop = match (prompt, scene_type) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad(
                "both prompt and scene_type given; describe the background with exactly one of them",
            ));
        }
        (None, None) => {
            return Err(Refusal::bad(
                "neither prompt nor scene_type given; describe the background with one of them",
            ));
        }
        (Some(prompt), None) => {
            check_prompt(&prompt)?;
            Backdrop::Prompt {
                prompt,
                negative: form.negative_prompt.filter(|n| !n.trim().is_empty()),
            }
        }
        (None, Some(raw)) => Backdrop::Scene(scene(parse_integer(field::SCENE_TYPE, &raw)?)?),
    };

    let batch_size = match form.batch_size.filter(|b| !b.is_empty()) {
        None => batch_size(i64::from(spec::DEFAULT_BATCH_SIZE))?,
        Some(raw) => batch_size(parse_integer(field::BATCH_SIZE, &raw)?)?,
    };

    let source = match (image_url, image_file) {
        (Some(url), _) => Source::Url(image_url_of(&url)?),
        (None, Some(file)) if file.too_large() => {
            return Err(Refusal::too_large(format!(
                "the image_file is {} bytes, over the limit of {MAX_IMAGE_FILE_BYTES} bytes ({} \
                 MiB)",
                file.size,
                MAX_IMAGE_FILE_BYTES >> 20
            )));
        }
        (None, Some(file)) => Source::File(file.data),
        (None, None) => {
            return Err(Refusal::bad(
                "neither image_url nor image_file given; send exactly one source image",
            ));
        }
    };
    Ok(NewTask {
        source,
        backdrop,
        batch_size,
    })
}

/// The prompt: not blank, at most [`spec::MAX_PROMPT_CHARS`] characters ("maximum length is
/// 1024 characters": counted in characters, not bytes).
fn check_prompt(prompt: &str) -> Result<(), Refusal> {
    if prompt.trim().is_empty() {
        return Err(Refusal::bad(
            "the prompt is empty (white space only); describe the background",
        ));
    }
    let chars = prompt.chars().count();
    if chars > spec::MAX_PROMPT_CHARS {
        return Err(Refusal::bad(format!(
            "the prompt is {chars} characters long; its maximum length is {} characters",
            spec::MAX_PROMPT_CHARS
        )));
    }
    Ok(())
}

/// A scene template id: a positive integer (the spec's type is "integer"; ids are positive).
fn scene(value: i64) -> Result<u32, Refusal> {
    u32::try_from(value)
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Refusal::bad(format!(
                "scene type {value} is not a template id; scene_type must be a positive integer"
            ))
        })
}

/// `batch_size`: one of [`spec::BATCH_SIZES`].
fn batch_size(value: i64) -> Result<BatchSize, Refusal> {
    let size = u8::try_from(value)
        .ok()
        .filter(|size| spec::BATCH_SIZES.contains(size))
        .ok_or_else(|| {
            Refusal::bad(format!(
                "batch size {value} is not supported; batch_size must be one of {:?}",
                spec::BATCH_SIZES
            ))
        })?;
    Ok(if size == 1 {
        BatchSize::One
    } else {
        BatchSize::Two
    })
}

/// An `image_url` the emulator can download: absolute, http or https, with a host.
fn image_url_of(raw: &str) -> Result<String, Refusal> {
    let trimmed = raw.trim();
    let shown: String = trimmed.chars().take(80).collect();
    let url = reqwest::Url::parse(trimmed)
        .map_err(|error| Refusal::bad(format!("image_url {shown:?} is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::bad(format!(
            "image_url {shown:?} has the scheme {:?}; only http and https URLs can be downloaded",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refusal::bad(format!("image_url {shown:?} has no host")));
    }
    Ok(trimmed.to_owned())
}

fn parse_integer(name: &str, raw: &str) -> Result<i64, Refusal> {
    raw.trim().parse::<i64>().map_err(|_| {
        let shown: String = raw.chars().take(40).collect();
        Refusal::bad(format!("the field {name} is {shown:?}, not an integer"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: usize) -> Option<Upload> {
        Some(Upload {
            data: Bytes::from(vec![0u8; size.min(16)]),
            size: size as u64,
        })
    }

    fn base() -> Form {
        Form {
            image_file: file(10),
            prompt: Some("a beach".to_owned()),
            ..Form::default()
        }
    }

    fn refused(form: Form) -> Refusal {
        check_form(form).unwrap_err()
    }

    #[test]
    fn a_valid_form_makes_a_task() {
        let new = check_form(base()).unwrap();
        assert_eq!(new.batch_size, BatchSize::Two);
        assert!(matches!(new.source, Source::File(_)));
        let new = check_form(Form {
            image_file: None,
            image_url: Some(" https://example.com/a.png ".to_owned()),
            prompt: None,
            scene_type: Some("105".to_owned()),
            batch_size: Some("1".to_owned()),
            ..Form::default()
        })
        .unwrap();
        assert_eq!(new.batch_size, BatchSize::One);
        assert_eq!(new.backdrop, Backdrop::Scene(105));
        assert!(matches!(new.source, Source::Url(url) if url == "https://example.com/a.png"));
    }

    #[test]
    fn each_rule_names_its_problem() {
        let both_images = refused(Form {
            image_url: Some("https://x/a.png".to_owned()),
            ..base()
        });
        assert_eq!(both_images.status, HttpStatus::BadRequest);
        assert!(
            both_images
                .message
                .contains("both image_url and image_file")
        );
        let no_image = refused(Form {
            image_file: None,
            ..base()
        });
        assert!(
            no_image
                .message
                .contains("neither image_url nor image_file")
        );
        let empty_file = refused(Form {
            image_file: file(0),
            ..base()
        });
        assert!(empty_file.message.contains("empty"));
        let both_backgrounds = refused(Form {
            scene_type: Some("3".to_owned()),
            ..base()
        });
        assert!(
            both_backgrounds
                .message
                .contains("both prompt and scene_type")
        );
        let no_background = refused(Form {
            prompt: Some(String::new()),
            ..base()
        });
        assert!(
            no_background
                .message
                .contains("neither prompt nor scene_type")
        );
        let blank = refused(Form {
            prompt: Some("   ".to_owned()),
            ..base()
        });
        assert!(blank.message.contains("prompt is empty"));
        let long = refused(Form {
            prompt: Some("é".repeat(1025)),
            ..base()
        });
        assert!(long.message.contains("1025 characters"), "{}", long.message);
        assert!(
            check_form(Form {
                prompt: Some("é".repeat(1024)),
                ..base()
            })
            .is_ok()
        );
        for bad in ["0", "-4", "abc", "1.5"] {
            let scene = refused(Form {
                prompt: None,
                scene_type: Some(bad.to_owned()),
                ..base()
            });
            assert!(scene.message.contains("scene"), "{bad}: {}", scene.message);
        }
        for bad in ["0", "3", "two"] {
            let batch = refused(Form {
                batch_size: Some(bad.to_owned()),
                ..base()
            });
            assert!(batch.message.contains("batch"), "{bad}: {}", batch.message);
        }
        let url = refused(Form {
            image_file: None,
            image_url: Some("ftp://x/a.png".to_owned()),
            ..base()
        });
        assert!(url.message.contains("http"), "{}", url.message);
    }

    #[test]
    fn oversized_files_are_413_after_the_parameter_checks() {
        let big = file(MAX_IMAGE_FILE_BYTES as usize + 1);
        let refusal = refused(Form {
            image_file: big,
            ..base()
        });
        assert_eq!(refusal.status, HttpStatus::PayloadTooLarge);
        let big = file(MAX_IMAGE_FILE_BYTES as usize + 1);
        let refusal = refused(Form {
            image_file: big,
            batch_size: Some("7".to_owned()),
            ..base()
        });
        assert_eq!(refusal.status, HttpStatus::BadRequest);
        assert!(
            check_form(Form {
                image_file: file(MAX_IMAGE_FILE_BYTES as usize),
                ..base()
            })
            .is_ok()
        );
    }
}
