//! Result bytes: a downloaded image, owned by the caller until freed.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::c_char;

use backdrop_core::{GeneratedImage, ImageFormat};

use crate::handle::{Castable, OwnershipBox, free_box, try_ref};

/// The bytes of one generated image (a JPEG, PNG or WebP file), from
/// `backdrop_client_download`.
///
/// Owned by the caller, who frees it with `backdrop_bytes_free`. Immutable: it may be read from
/// several threads at once.
pub struct backdrop_bytes {
    _private: [u8; 0],
}

impl Castable for backdrop_bytes {
    type Ownership = OwnershipBox;
    type RustType = GeneratedImage;
}

/// The first byte of the image file. The `backdrop_bytes_len` bytes from here stay valid and
/// unchanged until `backdrop_bytes_free`. NULL when `bytes` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_bytes_data(bytes: *const backdrop_bytes) -> *const u8 {
    ffi_infallible!(std::ptr::null(), {
        // SAFETY: the header's contract: NULL or live bytes.
        unsafe { try_ref(bytes) }.map_or(std::ptr::null(), |image| image.bytes.as_ptr())
    })
}

/// The length of the image file in bytes; 0 when `bytes` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_bytes_len(bytes: *const backdrop_bytes) -> usize {
    ffi_infallible!(0, {
        // SAFETY: the header's contract: NULL or live bytes.
        unsafe { try_ref(bytes) }.map_or(0, |image| image.bytes.len())
    })
}

/// The usual file extension of the image, without the dot: `"jpg"`, `"png"` or `"webp"`.
///
/// Returns a static NUL-terminated string (never freed); `""` when `bytes` is NULL. Never NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_bytes_extension(bytes: *const backdrop_bytes) -> *const c_char {
    ffi_infallible!(c"".as_ptr(), {
        // SAFETY: the header's contract: NULL or live bytes.
        match unsafe { try_ref(bytes) }.map(|image| image.format) {
            Some(ImageFormat::Jpeg) => c"jpg".as_ptr(),
            Some(ImageFormat::Png) => c"png".as_ptr(),
            Some(ImageFormat::Webp) => c"webp".as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// The MIME type of the image: `"image/jpeg"`, `"image/png"` or `"image/webp"`.
///
/// Returns a static NUL-terminated string (never freed); `""` when `bytes` is NULL. Never NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_bytes_mime_type(bytes: *const backdrop_bytes) -> *const c_char {
    ffi_infallible!(c"".as_ptr(), {
        // SAFETY: the header's contract: NULL or live bytes.
        match unsafe { try_ref(bytes) }.map(|image| image.format) {
            Some(ImageFormat::Jpeg) => c"image/jpeg".as_ptr(),
            Some(ImageFormat::Png) => c"image/png".as_ptr(),
            Some(ImageFormat::Webp) => c"image/webp".as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// Frees image bytes. NULL is a no-op. Pointers from `backdrop_bytes_data` die with it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_bytes_free(bytes: *mut backdrop_bytes) {
    ffi_infallible!((), {
        // SAFETY: the header's contract: NULL or live bytes, freed once.
        unsafe { free_box(bytes) }
    })
}
