//! Validating a PNG without a request or a client: the service's rules checked locally — the
//! whole file by default (header rules, structure, image data, pixels), or the header only.

#![allow(unsafe_code)] // exports #[no_mangle] functions

use std::ffi::c_char;
use std::path::Path;

use backdrop_core::validate::PngInfo;
use backdrop_core::validate::{
    InspectFileError, PixelRules, PngReport, Transparency, check_png_bytes, check_png_file,
    inspect_png_bytes, inspect_png_file,
};

use crate::error::{Fault, backdrop_error};
use crate::handle::OutPtr;
use crate::result::backdrop_result;
use crate::result::backdrop_result::BACKDROP_ERR_IO;

/// `flags` of `backdrop_validate_png_file_with` and `_bytes_with`: check the header only
/// (signature, 20 MiB, 256–4096 px, a transparency channel) — fast, but blind to damaged image
/// data and to images with nothing transparent. The pixel counts of the info are then 0.
pub const BACKDROP_VALIDATE_HEADER_ONLY: u32 = 1;
/// `flags`: accept an image in which no pixel is transparent (the background was not removed)
/// or none is visible. The structure and the image data are checked all the same.
pub const BACKDROP_VALIDATE_ALLOW_OPAQUE: u32 = 2;

/// What the check found in a valid source PNG.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// True when the pixels were checked and counted (not with `BACKDROP_VALIDATE_HEADER_ONLY`).
    pub pixels_checked: bool,
    /// True when the image is Adam7 interlaced (only known when the pixels were checked).
    pub interlaced: bool,
    /// Size of the whole file in bytes.
    pub file_size: u64,
    /// Pixels in the image (width × height), when checked; else 0.
    pub total_pixels: u64,
    /// Fully transparent pixels, when checked.
    pub transparent_pixels: u64,
    /// Fully opaque pixels, when checked.
    pub opaque_pixels: u64,
}

impl From<PngInfo> for backdrop_png_info {
    fn from(info: PngInfo) -> Self {
        backdrop_png_info {
            width: info.width,
            height: info.height,
            bit_depth: info.bit_depth,
            color_type: info.color_type,
            alpha_channel: info.transparency == Transparency::AlphaChannel,
            pixels_checked: false,
            interlaced: false,
            file_size: info.file_size,
            total_pixels: 0,
            transparent_pixels: 0,
            opaque_pixels: 0,
        }
    }
}

impl From<PngReport> for backdrop_png_info {
    fn from(report: PngReport) -> Self {
        backdrop_png_info {
            pixels_checked: true,
            interlaced: report.interlaced,
            total_pixels: report.pixels.total,
            transparent_pixels: report.pixels.transparent,
            opaque_pixels: report.pixels.opaque,
            ..report.info.into()
        }
    }
}

/// The pixel rules of `flags`.
fn rules(flags: u32) -> PixelRules {
    PixelRules {
        allow_opaque: flags & BACKDROP_VALIDATE_ALLOW_OPAQUE != 0,
        ..PixelRules::default()
    }
}

/// Checks `flags`: only the documented bits.
fn known_flags(flags: u32) -> Result<(), Fault> {
    let known = BACKDROP_VALIDATE_HEADER_ONLY | BACKDROP_VALIDATE_ALLOW_OPAQUE;
    if flags & !known != 0 {
        return Err(Fault::invalid_argument(format!(
            "flags {flags:#x} has bits no BACKDROP_VALIDATE_* value defines"
        )));
    }
    Ok(())
}

fn file_info(path: &Path, flags: u32) -> Result<backdrop_png_info, Fault> {
    let read_error = |error: InspectFileError| match error {
        InspectFileError::Io(io) => Fault::new(
            BACKDROP_ERR_IO,
            format!("cannot read {}: {io}", path.display()),
        ),
        other => other.into(),
    };
    if flags & BACKDROP_VALIDATE_HEADER_ONLY != 0 {
        inspect_png_file(path).map(Into::into).map_err(read_error)
    } else {
        check_png_file(path, rules(flags))
            .map(Into::into)
            .map_err(read_error)
    }
}

/// Checks that the file at `path` is a PNG the service accepts: the whole file — signature,
/// 256–4096 px per side, at most 20 MiB, transparency, every chunk and its CRC, the image data,
/// and that some pixels are transparent and some visible. Sends nothing; needs no client. The
/// same as `backdrop_validate_png_file_with(path, 0, info_out, error_out)`.
///
/// `info_out` is optional: when it is not NULL and the file is valid, what the check found is
/// written to it. Returns `BACKDROP_OK` for a valid file; otherwise writes nothing to `info_out`
/// and returns the broken rule's `BACKDROP_ERR_INVALID_*` code, `BACKDROP_ERR_IO` when the file
/// cannot be read, or `BACKDROP_ERR_NULL_PARAMETER`, with the detail in `*error_out` if
/// `error_out` is not NULL (the caller frees it). Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_validate_png_file(
    path: *const c_char,
    info_out: *mut backdrop_png_info,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let path = arg_path!(path);
        let info = file_info(&path, 0)?;
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info);
        }
        Ok(())
    })
}

/// Like `backdrop_validate_png_file`, with `flags`: 0, or `BACKDROP_VALIDATE_HEADER_ONLY`
/// (the header alone: fast, blind to the image data), or `BACKDROP_VALIDATE_ALLOW_OPAQUE` (the
/// pixel rules skipped). Other bits: `BACKDROP_ERR_INVALID_ARGUMENT`. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_validate_png_file_with(
    path: *const c_char,
    flags: u32,
    info_out: *mut backdrop_png_info,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let path = arg_path!(path);
        known_flags(flags)?;
        let info = file_info(&path, flags)?;
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info);
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
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let data = arg_image!(data, len);
        let info: backdrop_png_info = check_png_bytes(data, PixelRules::default())?.into();
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info);
        }
        Ok(())
    })
}

/// Like `backdrop_validate_png_bytes`, with the `flags` of `backdrop_validate_png_file_with`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn backdrop_validate_png_bytes_with(
    data: *const u8,
    len: usize,
    flags: u32,
    info_out: *mut backdrop_png_info,
    error_out: *mut *mut backdrop_error,
) -> backdrop_result {
    ffi_boundary!(error_out = error_out, {
        let data = arg_image!(data, len);
        known_flags(flags)?;
        let info: backdrop_png_info = if flags & BACKDROP_VALIDATE_HEADER_ONLY != 0 {
            inspect_png_bytes(data)?.into()
        } else {
            check_png_bytes(data, rules(flags))?.into()
        };
        if let Some(out) = OutPtr::new(info_out) {
            write_out!(out, info);
        }
        Ok(())
    })
}
