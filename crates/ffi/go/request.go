package backdrop

// #include <backdrop.h>
// #include <stdlib.h>
import "C"

import (
	"unsafe"
)

// Request says what to generate: exactly one source image (ImagePath, ImageBytes or ImageURL)
// and exactly one background description (Prompt or SceneType). The rules are checked locally
// by Validate and by Client.CreateTask before anything is sent.
type Request struct {
	// ImagePath is a transparent PNG file (256–4096 px, at most 20 MiB), read when sent.
	ImagePath string
	// ImageBytes is a transparent PNG file's bytes (copied when sent); ImageFileName names it
	// in the upload (default "image.png").
	ImageBytes    []byte
	ImageFileName string
	// ImageURL is an http(s) URL the service downloads the image from.
	ImageURL string
	// Prompt describes the background (1 to 1024 characters; English works best).
	Prompt string
	// NegativePrompt says what the background should not contain.
	NegativePrompt string
	// SceneType is a background template id, instead of a prompt (0: none).
	SceneType int64
	// BatchSize is the number of images, 1 or 2 (0: the default, 2).
	BatchSize uint32
	// AllowOpaque sends an image in which no pixel is transparent (the background was not
	// removed) or none is visible; by default such an image is refused before sending.
	AllowOpaque bool
}

// Validate checks every rule locally, the whole PNG included, without sending anything.
func (r Request) Validate() error {
	creq, err := r.toC()
	if err != nil {
		return err
	}
	defer C.backdrop_request_free(creq)
	var detail *C.backdrop_error
	code := C.backdrop_request_validate(creq, &detail)
	return check(code, detail)
}

// toC builds the C request; the caller frees it.
func (r Request) toC() (*C.backdrop_request, error) {
	var creq *C.backdrop_request
	if err := check(C.backdrop_request_new(&creq), nil); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			C.backdrop_request_free(creq)
		}
	}()
	setString := func(value, what string, set func(*C.char) C.backdrop_result) error {
		if value == "" {
			return nil
		}
		cvalue, err := cString(value, what)
		if err != nil {
			return err
		}
		defer freeString(cvalue)
		return check(set(cvalue), nil)
	}
	steps := []func() error{
		func() error {
			return setString(r.ImagePath, "the image path", func(s *C.char) C.backdrop_result {
				return C.backdrop_request_set_image_path(creq, s)
			})
		},
		func() error {
			if r.ImageBytes == nil {
				return nil
			}
			name := r.ImageFileName
			if name == "" {
				name = "image.png"
			}
			cname, err := cString(name, "the image file name")
			if err != nil {
				return err
			}
			defer freeString(cname)
			// The library copies the bytes during the call; an empty slice still needs a
			// valid pointer.
			data := r.ImageBytes
			if len(data) == 0 {
				data = []byte{0}
			}
			code := C.backdrop_request_set_image_bytes(creq, (*C.uint8_t)(unsafe.Pointer(&data[0])),
				C.size_t(len(r.ImageBytes)), cname)
			return check(code, nil)
		},
		func() error {
			return setString(r.ImageURL, "the image URL", func(s *C.char) C.backdrop_result {
				return C.backdrop_request_set_image_url(creq, s)
			})
		},
		func() error {
			return setString(r.Prompt, "the prompt", func(s *C.char) C.backdrop_result {
				return C.backdrop_request_set_prompt(creq, s)
			})
		},
		func() error {
			return setString(r.NegativePrompt, "the negative prompt", func(s *C.char) C.backdrop_result {
				return C.backdrop_request_set_negative_prompt(creq, s)
			})
		},
		func() error {
			if r.SceneType == 0 {
				return nil
			}
			return check(C.backdrop_request_set_scene_type(creq, C.int64_t(r.SceneType)), nil)
		},
		func() error {
			if r.BatchSize == 0 {
				return nil
			}
			return check(C.backdrop_request_set_batch_size(creq, C.uint32_t(r.BatchSize)), nil)
		},
		func() error {
			return check(C.backdrop_request_set_allow_opaque(creq, C.bool(r.AllowOpaque)), nil)
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	ok = true
	return creq, nil
}
