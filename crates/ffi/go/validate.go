package backdrop

// #include <backdrop.h>
// #include <stdlib.h>
import "C"

import (
	"unsafe"
)

// PNGInfo is what the header of a valid source PNG says.
type PNGInfo struct {
	Width, Height uint32
	BitDepth      uint8
	// ColorType is the PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA.
	ColorType uint8
	// AlphaChannel is true for transparency from an alpha channel, false for a tRNS chunk.
	AlphaChannel bool
	FileSize     uint64
}

func pngInfo(raw C.backdrop_png_info) PNGInfo {
	return PNGInfo{
		Width:        uint32(raw.width),
		Height:       uint32(raw.height),
		BitDepth:     uint8(raw.bit_depth),
		ColorType:    uint8(raw.color_type),
		AlphaChannel: bool(raw.alpha_channel),
		FileSize:     uint64(raw.file_size),
	}
}

// ValidatePNGFile checks that the file at path is a PNG the service accepts (signature,
// 256–4096 px, at most 20 MiB, transparency), reading its header only. Sends nothing.
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
