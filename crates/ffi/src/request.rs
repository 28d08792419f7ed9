//! Requests: what to generate (the source image, the background description, the batch size).

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::c_char;
use std::path::PathBuf;

use backdrop_core::validate::ValidationError;
use backdrop_core::validate::{check_png_bytes, check_png_file};
use backdrop_core::{BatchSize, GenerateRequest, ImageSource, SceneType};
use bytes::Bytes;

use crate::error::{Fault, backdrop_error};
use crate::handle::{Castable, OwnershipBox, free_box, to_box_ptr};
use crate::result::backdrop_result;

/// What to generate: one source image (a PNG file, PNG bytes or a URL the service fetches), one
/// background description (a prompt or a scene template id), optionally a negative prompt, and
/// the batch size (1 or 2 images, default 2).
///
/// Made by `backdrop_request_new`, filled by the `backdrop_request_set_*` calls, owned by the
/// caller, who frees it with `backdrop_request_free`. Each setter replaces its own field; the
/// rules between fields (exactly one image source, exactly one of prompt and scene type) and the
/// rules of each value are checked by `backdrop_request_validate` and by
/// `backdrop_client_create_task`, never by the setters (but image bytes over 20 MiB are refused
/// before they are copied). A request is not consumed by a create: it may be sent again, and
/// read by several threads at once while nobody changes it.
pub struct backdrop_request {
    _private: [u8; 0],
}

impl Castable for backdrop_request {
    type Ownership = OwnershipBox;
    type RustType = RequestData;
}

/// What a `backdrop_request` holds.
#[derive(Debug, Default, Clone)]
pub(crate) struct RequestData {
    image_path: Option<PathBuf>,
    image_bytes: Option<(Bytes, String)>,
    image_url: Option<String>,
    prompt: Option<String>,
    scene_type: Option<i64>,
    negative_prompt: Option<String>,
    batch_size: Option<i64>,
    allow_opaque: bool,
}

impl RequestData {
    /// The core request, or the first rule the fields break.
    pub(crate) fn build(&self) -> Result<GenerateRequest, ValidationError> {
        let mut builder = GenerateRequest::builder();
        if let Some(path) = &self.image_path {
            builder = builder.image_path(path.clone());
        }
        if let Some((data, name)) = &self.image_bytes {
            builder = builder.image_bytes(data.clone(), name.clone());
        }
        if let Some(url) = &self.image_url {
            builder = builder.image_url(url);
        }
        if let Some(prompt) = &self.prompt {
            builder = builder.prompt(prompt.clone());
        }
        if let Some(scene) = self.scene_type {
            builder = builder.scene_type(SceneType::try_from(scene)?);
        }
        if let Some(negative) = &self.negative_prompt {
            builder = builder.negative_prompt(negative.clone());
        }
        if let Some(batch) = self.batch_size {
            builder = builder.batch_size(BatchSize::try_from(batch)?);
        }
        builder.allow_opaque(self.allow_opaque).build()
    }

    /// Every local check, the whole image included (header rules, structure, image data,
    /// pixels): what a create would refuse before sending.
    pub(crate) fn validate(&self) -> Result<GenerateRequest, Fault> {
        let request = self.build()?;
        match request.image() {
            ImageSource::Path(path) => {
                check_png_file(path, request.pixel_rules()).map_err(|error| match error {
                    backdrop_core::validate::InspectFileError::Io(io) => Fault::new(
                        crate::result::backdrop_result::BACKDROP_ERR_IO,
                        format!("cannot read {}: {io}", path.display()),
                    ),
                    other => other.into(),
                })?;
            }
            ImageSource::Bytes { data, .. } => {
                check_png_bytes(data, request.pixel_rules())?;
            }
            ImageSource::Url(_) => {}
        }
        Ok(request)
    }
}

/// Makes an empty request.
///
/// On success writes it to `*request_out` (the caller frees it with `backdrop_request_free`) and
/// returns `BACKDROP_OK`; returns `BACKDROP_ERR_NULL_PARAMETER` when `request_out` is NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_new(
    request_out: *mut *mut backdrop_request,
) -> backdrop_result {
    ffi_boundary!({
        let request_out = arg_out!(request_out);
        write_out!(
            request_out,
            to_box_ptr::<backdrop_request>(RequestData::default())
        );
        Ok(())
    })
}

/// The source image is the PNG file at `path` (a NUL-terminated path, copied; the file is read
/// when the task is created or the request validated).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_image_path(
    request: *mut backdrop_request,
    path: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        let path = arg_path!(path);
        request.image_path = Some(path);
        Ok(())
    })
}

/// The source image is the `len` PNG bytes at `data` (copied: the buffer may be freed after the
/// call). `file_name` is the file name sent with the upload; it may be NULL for `"image.png"`.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER`, `BACKDROP_ERR_INVALID_UTF8` or
/// `BACKDROP_ERR_INVALID_FILE_TOO_LARGE` (`len` over the service's 20 MiB: refused before
/// anything is read or copied) (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_image_bytes(
    request: *mut backdrop_request,
    data: *const u8,
    len: usize,
    file_name: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        let data = arg_image!(data, len);
        let file_name = if file_name.is_null() {
            "image.png"
        } else {
            arg_str!(file_name)
        };
        request.image_bytes = Some((Bytes::copy_from_slice(data), file_name.to_owned()));
        Ok(())
    })
}

/// The service downloads the source image from `url` (an absolute http(s) URL, copied).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` / `BACKDROP_ERR_INVALID_UTF8`
/// (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_image_url(
    request: *mut backdrop_request,
    url: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        let url = arg_str!(url);
        request.image_url = Some(url.to_owned());
        Ok(())
    })
}

/// Describes the background with a prompt (UTF-8, 1 to 1024 characters, copied; English works
/// best). Excludes a scene type.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` / `BACKDROP_ERR_INVALID_UTF8`
/// (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_prompt(
    request: *mut backdrop_request,
    prompt: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        let prompt = arg_str!(prompt);
        request.prompt = Some(prompt.to_owned());
        Ok(())
    })
}

/// What the background should not contain (UTF-8, copied). A blank one is ignored.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` / `BACKDROP_ERR_INVALID_UTF8`
/// (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_negative_prompt(
    request: *mut backdrop_request,
    negative_prompt: *const c_char,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        let negative_prompt = arg_str!(negative_prompt);
        request.negative_prompt = Some(negative_prompt.to_owned());
        Ok(())
    })
}

/// Uses a background template id from PicWish's scene_type list instead of a prompt (a positive
/// number). Excludes a prompt.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_scene_type(
    request: *mut backdrop_request,
    scene_type: i64,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        request.scene_type = Some(scene_type);
        Ok(())
    })
}

/// How many images to generate: 1 (3 credits) or 2 (6 credits, the default).
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` (nothing changed). Another value is
/// refused by validation as `BACKDROP_ERR_INVALID_BATCH_SIZE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_batch_size(
    request: *mut backdrop_request,
    batch_size: u32,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        request.batch_size = Some(i64::from(batch_size));
        Ok(())
    })
}

/// Sends the image even when none of its pixels is transparent (the background was not
/// removed) or none is visible (`allow` true); by default (false) such an image is refused with
/// `BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT` or `_NOTHING_VISIBLE`. The file's structure and
/// header rules are checked either way.
///
/// Returns `BACKDROP_OK`, or `BACKDROP_ERR_NULL_PARAMETER` (nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_set_allow_opaque(
    request: *mut backdrop_request,
    allow: bool,
) -> backdrop_result {
    ffi_boundary!({
        let request = arg_mut!(request);
        request.allow_opaque = allow;
        Ok(())
    })
}

/// Checks the request locally, as `backdrop_client_create_task` does before sending anything:
/// the rules between fields, the prompt, the batch size, the scene type, the URL, and the whole
/// PNG of a file or bytes (signature, 256–4096 px, at most 20 MiB, transparency, every chunk and
/// its CRC, the image data, some pixels transparent and some visible). Sends nothing.
///
/// Returns `BACKDROP_OK` when a create would send the request; otherwise the code of the first
/// rule broken (`BACKDROP_ERR_INVALID_*`, or `BACKDROP_ERR_IO` when the file cannot be read),
/// with the detail in `*error_out` if `error_out` is not NULL (the caller frees it).
/// Thread-safe for a request nobody changes meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_validate(
    request: *const backdrop_request,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let request = arg_ref!(request);
        request.validate()?;
        Ok(())
    })
}

/// Frees a request. NULL is a no-op. Tasks created from it are not affected.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_request_free(request: *mut backdrop_request) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or a live request, freed once.
        unsafe { free_box(request) }
    })
}
