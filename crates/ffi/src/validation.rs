//! Validating a PNG without a request or a client: the service's rules, checked locally from the
//! file's header only.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::c_char;

use backdrop_core::PngInfo;
use backdrop_core::validate::{
    InspectFileError, Transparency, inspect_png_bytes, inspect_png_file,
};

use crate::error::{Failure, backdrop_error};
use crate::handle::OutPtr;
use crate::result::backdrop_result::BACKDROP_ERR_IO;

/// What the header of a valid source PNG says.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct backdrop_png_info {
    /// Width in pixels (256 to 4096).
    pub width: u32,
    /// Height in pixels (256 to 4096).
    pub height: u32,
    /// Bits per sample.
    pub bit_depth: u8,
    /// PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
    pub color_type: u8,
    /// True when the transparency comes from an alpha channel (colour type 4 or 6), false when
    /// from a tRNS chunk.
    pub alpha_channel: bool,
    /// Size of the whole file in bytes.
    pub file_size: u64,
}

impl From<PngInfo> for backdrop_png_info {
    fn from(info: PngInfo) -> Self {
        backdrop_png_info {
            width: info.width,
            height: info.height,
            bit_depth: info.bit_depth,
            color_type: info.color_type,
            alpha_channel: info.transparency == Transparency::AlphaChannel,
            file_size: info.file_size,
        }
    }
}

/// Checks that the file at `path` is a PNG the service accepts (signature, 256–4096 px per side,
/// at most 20 MiB, transparency), reading its header only. Sends nothing; needs no client.
///
/// `info_out` is optional: when it is not NULL and the file is valid, the header's facts are
/// written to it. Returns `BACKDROP_OK` for a valid file; otherwise writes nothing to `info_out`
/// and returns the broken rule's `BACKDROP_ERR_INVALID_*` code, `BACKDROP_ERR_IO` when the file
/// cannot be read, or `BACKDROP_ERR_NULL_PARAMETER`, with the detail in `*error_out` if
/// `error_out` is not NULL (the caller frees it). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_validate_png_file(
    path: *const c_char,
    info_out: *mut backdrop_png_info,
    error_out: *mut *mut backdrop_error,
) -> u32 {
    ffi_boundary!(error_out = error_out, {
        let path = arg_path!(path);
        let info = inspect_png_file(&path).map_err(|error| match error {
            InspectFileError::Io(io) => Failure::new(
                BACKDROP_ERR_IO,
                format!("cannot read {}: {io}", path.display()),
            ),
            other => other.into(),
        })?;
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info.into());
        }
        Ok(())
    })
}

/// Checks that the `len` bytes at `data` are a PNG file the service accepts, like
/// `backdrop_validate_png_file`. The bytes are only read during the call; a `len` over 20 MiB
/// is refused (`BACKDROP_ERR_INVALID_FILE_TOO_LARGE`) without reading them.
///
/// `info_out` is optional, as for `backdrop_validate_png_file`; so are the results.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_validate_png_bytes(
    data: *const u8,
    len: usize,
    info_out: *mut backdrop_png_info,
    error_out: *mut *mut backdrop_error,
) -> u32 {
    ffi_boundary!(error_out = error_out, {
        let data = arg_image!(data, len);
        let info = inspect_png_bytes(data)?;
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info.into());
        }
        Ok(())
    })
}
