// Command backdrop-generate generates backgrounds for a transparent product PNG with
// libbackdrop, through the Go package.
//
//	backdrop-generate IMAGE.png "PROMPT" [OUT_PREFIX]
//
// It reads PICWISH_API_KEY (required), PICWISH_BASE_URL (optional, e.g. an emulator) and
// PICWISH_QPS (optional), and writes OUT_PREFIX-1.jpg and OUT_PREFIX-2.jpg (the prefix defaults to
// the image's name without ".png"). Ctrl-C stops waiting (the task goes on at the service; its id
// is printed to resume it).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	backdrop "github.com/backdrop-rs/backdrop/crates/ffi/go"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) < 3 || len(os.Args) > 4 {
		fmt.Fprintf(os.Stderr, "usage: %s IMAGE.png PROMPT [OUT_PREFIX]\n", filepath.Base(os.Args[0]))
		return 2
	}
	image, prompt := os.Args[1], os.Args[2]
	prefix := strings.TrimSuffix(filepath.Base(image), ".png")
	if len(os.Args) == 4 {
		prefix = os.Args[3]
	}
	cfg, err := backdrop.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "backdrop-generate:", err)
		return 2
	}
	client, err := backdrop.NewClient(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "backdrop-generate:", err)
		return 2
	}
	defer client.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	task, err := client.CreateTask(backdrop.Request{ImagePath: image, Prompt: prompt})
	if err != nil {
		return report("creating the task", err)
	}
	defer task.Close()
	fmt.Fprintf(os.Stderr, "backdrop-generate: task %s created\n", task.ID())

	err = client.Wait(ctx, task, func(p backdrop.Progress) {
		fmt.Fprintf(os.Stderr, "backdrop-generate: task %s: state %d, progress %.0f%%\n", p.TaskID, p.State, p.Percent)
	})
	if err != nil {
		return report("waiting for the task", err)
	}
	// Results are numbered from 1 (data.image_1), and so are the files.
	for n := 1; n <= task.ResultCount(); n++ {
		data, err := client.Download(task, n)
		if err != nil {
			return report("downloading a result", err)
		}
		path := fmt.Sprintf("%s-%d.%s", prefix, n, extension(data))
		if err := writeFile(path, data); err != nil {
			fmt.Fprintln(os.Stderr, "backdrop-generate:", err)
			return 1
		}
		fmt.Println(path)
	}
	return 0
}

// report prints a failure with its detail and returns the exit status.
func report(what string, err error) int {
	fmt.Fprintf(os.Stderr, "backdrop-generate: %s failed: %v\n", what, err)
	var e *backdrop.Error
	if errors.As(err, &e) {
		if e.TaskID != "" {
			fmt.Fprintf(os.Stderr, "backdrop-generate: task id %s\n", e.TaskID)
		}
		if e.HasTaskState {
			fmt.Fprintf(os.Stderr, "backdrop-generate: task state %d: %s\n", e.TaskState, backdrop.StateMeaning(e.TaskState))
		}
	}
	if errors.Is(err, backdrop.ErrInvalidInput) {
		return 3
	}
	return 1
}

// extension names an image by its first bytes.
func extension(data []byte) string {
	switch {
	case len(data) > 3 && data[0] == 0x89 && string(data[1:4]) == "PNG":
		return "png"
	case len(data) > 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return "webp"
	default:
		return "jpg"
	}
}

// writeFile writes through a temporary file and a rename, so path never holds a partial image.
func writeFile(path string, data []byte) error {
	temp := path + ".part"
	if err := os.WriteFile(temp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(temp, path); err != nil {
		os.Remove(temp)
		return err
	}
	return nil
}
