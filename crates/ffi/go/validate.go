package backdrop

// #include <backdrop.h>
// #include <stdlib.h>
import "C"

import (
	"unsafe"
)

// PNGInfo is what the check found in a valid source PNG.
type PNGInfo struct {
	Width, Height uint32
	BitDepth      uint8
	// ColorType is the PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
	ColorType uint8
	// AlphaChannel is true for transparency from an alpha channel, false for a tRNS chunk.
	AlphaChannel bool
	FileSize     uint64
	// PixelsChecked is true when the pixels were counted (not with ValidateHeaderOnly).
	PixelsChecked bool
	// Interlaced is true for an Adam7 image (known when the pixels were checked).
	Interlaced bool
	// TotalPixels, TransparentPixels and OpaquePixels count the image's pixels, when checked.
	TotalPixels, TransparentPixels, OpaquePixels uint64
}

// TransparentShare is the share of fully transparent pixels, 0 to 1 (0 when not checked).
func (i PNGInfo) TransparentShare() float64 {
	if i.TotalPixels == 0 {
		return 0
	}
	return float64(i.TransparentPixels) / float64(i.TotalPixels)
}

// ValidateFlags choose what ValidatePNGFileWith and ValidatePNGWith check.
type ValidateFlags uint32

const (
	// ValidateHeaderOnly checks the header alone: fast, blind to damaged image data and to
	// images with nothing transparent.
	ValidateHeaderOnly ValidateFlags = C.BACKDROP_VALIDATE_HEADER_ONLY
	// ValidateAllowOpaque accepts images in which no pixel is transparent or none is visible.
	ValidateAllowOpaque ValidateFlags = C.BACKDROP_VALIDATE_ALLOW_OPAQUE
)

func pngInfo(raw C.backdrop_png_info) PNGInfo {
	return PNGInfo{
		Width:             uint32(raw.width),
		Height:            uint32(raw.height),
		BitDepth:          uint8(raw.bit_depth),
		ColorType:         uint8(raw.color_type),
		AlphaChannel:      bool(raw.alpha_channel),
		FileSize:          uint64(raw.file_size),
		PixelsChecked:     bool(raw.pixels_checked),
		Interlaced:        bool(raw.interlaced),
		TotalPixels:       uint64(raw.total_pixels),
		TransparentPixels: uint64(raw.transparent_pixels),
		OpaquePixels:      uint64(raw.opaque_pixels),
	}
}

// ValidatePNGFileWith is ValidatePNGFile with flags.
func ValidatePNGFileWith(path string, flags ValidateFlags) (PNGInfo, error) {
	cpath, err := cString(path, "the path")
	if err != nil {
		return PNGInfo{}, err
	}
	defer freeString(cpath)
	var raw C.backdrop_png_info
	var detail *C.backdrop_error
	code := C.backdrop_validate_png_file_with(cpath, C.uint32_t(flags), &raw, &detail)
	if err := check(code, detail); err != nil {
		return PNGInfo{}, err
	}
	return pngInfo(raw), nil
}

// ValidatePNGFile checks that the file at path is a PNG the service accepts: the whole file —
// signature, 256–4096 px, at most 20 MiB, transparency, every chunk, the image data, and that
// some pixels are transparent and some visible. Sends nothing.
func ValidatePNGFile(path string) (PNGInfo, error) {
	cpath, err := cString(path, "the path")
	if err != nil {
		return PNGInfo{}, err
	}
	defer freeString(cpath)
	var raw C.backdrop_png_info
	var detail *C.backdrop_error
	code := C.backdrop_validate_png_file(cpath, &raw, &detail)
	if err := check(code, detail); err != nil {
		return PNGInfo{}, err
	}
	return pngInfo(raw), nil
}

// ValidatePNG checks PNG bytes like ValidatePNGFile.
func ValidatePNG(data []byte) (PNGInfo, error) {
	buf := data
	if len(buf) == 0 {
		buf = []byte{0} // a valid pointer for an empty input
	}
	var raw C.backdrop_png_info
	var detail *C.backdrop_error
	code := C.backdrop_validate_png_bytes((*C.uint8_t)(unsafe.Pointer(&buf[0])), C.size_t(len(data)),
		&raw, &detail)
	if err := check(code, detail); err != nil {
		return PNGInfo{}, err
	}
	return pngInfo(raw), nil
}
