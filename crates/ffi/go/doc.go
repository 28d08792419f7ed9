// Package backdrop generates AI backgrounds for transparent product PNGs with PicWish's Generate
// Background API, through libbackdrop (the C library of github.com/backdrop-rs/backdrop).
//
// It links the installed library with cgo and pkg-config (`pkg-config --cflags --libs
// backdrop`); install it with crates/ffi/install.sh PREFIX and set PKG_CONFIG_PATH to
// PREFIX/lib/pkgconfig.
//
//	client, err := backdrop.NewClient(backdrop.Config{APIKey: key})
//	if err != nil { ... }
//	defer client.Close()
//	task, err := client.CreateTask(backdrop.Request{ImagePath: "product.png", Prompt: "a marble countertop"})
//	if err != nil { ... }
//	defer task.Close()
//	err = client.Wait(ctx, task, func(p backdrop.Progress) { log.Print(p.State, p.Percent) })
//	if errors.Is(err, backdrop.ErrTaskFailed) { ... }
//	image, err := client.Download(task, 1) // results are numbered from 1, as data.image_1
//
// A Client is safe for concurrent use by many goroutines, and all of its calls share one rate
// limit (the key's requests per second): share one client rather than making one per
// goroutine. Its calls block the calling goroutine (and its OS thread) while the library's own
// worker threads do the I/O.
//
// Errors are *Error values carrying the library's result code and detail; errors.Is matches
// them against the sentinel errors of each family (ErrInvalidInput, ErrService, ErrTask, …) and
// of the common codes (ErrUnauthorized, ErrTaskFailed, …). Wait honours its context: a cancelled
// context stops the wait at the next poll, a deadline bounds it, and the returned error matches
// both ErrCanceled or ErrTimeout and the context's error.
//
// Clients and tasks hold C resources: Close them when done (Close is idempotent); a cleanup
// frees them if the Go object is garbage collected first. fork() after creating a client is not
// supported.
package backdrop
