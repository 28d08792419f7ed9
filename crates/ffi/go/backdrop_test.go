package backdrop_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	backdrop "github.com/backdrop-rs/backdrop/crates/ffi/go"
)

// The environment of crates/ffi/tests/run.sh: emulators on 127.0.0.1 and a fixture.
type env struct {
	url, never, key, fixture, out, version string
}

func testEnv(t *testing.T) env {
	t.Helper()
	get := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("%s is not set: run crates/ffi/tests/run.sh", name)
		}
		return v
	}
	return env{
		url:     get("BACKDROP_TEST_URL"),
		never:   get("BACKDROP_TEST_URL_NEVER"),
		key:     get("BACKDROP_TEST_KEY"),
		fixture: get("BACKDROP_TEST_FIXTURE"),
		out:     get("BACKDROP_TEST_OUT"),
		version: get("BACKDROP_TEST_VERSION"),
	}
}

func newClient(t *testing.T, url, key string) *backdrop.Client {
	t.Helper()
	client, err := backdrop.NewClient(backdrop.Config{
		APIKey:         key,
		BaseURL:        url,
		QPS:            10, // half the emulators' 20: headroom for the race detector's slowdown
		PollInterval:   100 * time.Millisecond,
		MaxAttempts:    3,
		InitialBackoff: 20 * time.Millisecond,
		MaxBackoff:     200 * time.Millisecond,
		RequestTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func isJPEG(data []byte) bool {
	return len(data) > 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
}

func counters(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url + "/__emulator/counters")
	if err != nil {
		t.Fatalf("counters: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("counters: %v", err)
	}
	return out
}

func asError(t *testing.T, err error) *backdrop.Error {
	t.Helper()
	var e *backdrop.Error
	if !errors.As(err, &e) {
		t.Fatalf("want a *backdrop.Error, got %T: %v", err, err)
	}
	return e
}

func TestVersionAndCodes(t *testing.T) {
	e := testEnv(t)
	if got := backdrop.Version(); got != e.version {
		t.Fatalf("Version() = %q, want %q", got, e.version)
	}
	if got := backdrop.CodeTimeout.String(); got != "BACKDROP_ERR_TIMEOUT" {
		t.Fatalf("CodeTimeout.String() = %q", got)
	}
	if !strings.Contains(backdrop.CodeTimeout.Message(), "resume") {
		t.Fatalf("CodeTimeout.Message() = %q", backdrop.CodeTimeout.Message())
	}
	if !strings.Contains(backdrop.StateMeaning(-17), "prompt") {
		t.Fatalf("StateMeaning(-17) = %q", backdrop.StateMeaning(-17))
	}
}

func TestValidation(t *testing.T) {
	e := testEnv(t)
	header, err := backdrop.ValidatePNGFileWith(e.fixture, backdrop.ValidateHeaderOnly)
	if err != nil || header.PixelsChecked || header.Width != 480 {
		t.Fatalf("ValidatePNGFileWith(header only) = %+v, %v", header, err)
	}
	info, err := backdrop.ValidatePNGFile(e.fixture)
	if err == nil && (!info.PixelsChecked || info.TotalPixels != 480*640 || info.TransparentShare() <= 0) {
		t.Fatalf("ValidatePNGFile = %+v: the pixels were not counted", info)
	}
	if err != nil || info.Width != 480 || info.Height != 640 || !info.AlphaChannel {
		t.Fatalf("ValidatePNGFile = %+v, %v", info, err)
	}
	_, err = backdrop.ValidatePNG([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F'})
	if !errors.Is(err, backdrop.ErrInvalidInput) || asError(t, err).Code != backdrop.CodeInvalidNotPNG {
		t.Fatalf("ValidatePNG(jpeg) = %v", err)
	}
	if _, err := backdrop.ValidatePNG(nil); asError(t, err).Code != backdrop.CodeInvalidEmptyFile {
		t.Fatalf("ValidatePNG(nil) = %v", err)
	}
	if _, err := backdrop.ValidatePNGFile("/nonexistent/x.png"); !errors.Is(err, backdrop.ErrIO) {
		t.Fatalf("ValidatePNGFile(missing) = %v", err)
	}
	both := backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", SceneType: 105}
	if err := both.Validate(); asError(t, err).Code != backdrop.CodeInvalidBackground {
		t.Fatalf("Validate(prompt and scene) = %v", err)
	}
	long := backdrop.Request{ImagePath: e.fixture, Prompt: strings.Repeat("é", 1025)}
	if err := long.Validate(); asError(t, err).Code != backdrop.CodeInvalidPromptTooLong {
		t.Fatalf("Validate(long prompt) = %v", err)
	}
	nul := backdrop.Request{ImagePath: e.fixture, Prompt: "a\x00beach"}
	if err := nul.Validate(); !errors.Is(err, backdrop.ErrUsage) {
		t.Fatalf("Validate(NUL) = %v", err)
	}
	ok := backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(ok) = %v", err)
	}
}

func TestCreateWaitDownload(t *testing.T) {
	e := testEnv(t)
	client := newClient(t, e.url, e.key)
	data, err := os.ReadFile(e.fixture)
	if err != nil {
		t.Fatal(err)
	}
	task, err := client.CreateTask(backdrop.Request{ImageBytes: data, ImageFileName: "bottle.png",
		Prompt: "a marble countertop", NegativePrompt: "people", BatchSize: 2})
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	defer task.Close()
	if task.ID() == "" || task.State() != 0 || task.Progress() != -1 {
		t.Fatalf("a new task: id %q state %d progress %v", task.ID(), task.State(), task.Progress())
	}
	if _, err := client.Download(task, 1); asError(t, err).Code != backdrop.CodeTaskNotSucceeded {
		t.Fatalf("Download before success = %v", err)
	}
	var seen []backdrop.Progress
	if err := client.Wait(context.Background(), task, func(p backdrop.Progress) { seen = append(seen, p) }); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if len(seen) == 0 || seen[len(seen)-1].State != 1 || seen[0].TaskID != task.ID() {
		t.Fatalf("progress seen: %+v", seen)
	}
	if !task.Succeeded() || task.ResultCount() != 2 || task.Progress() != 100 {
		t.Fatalf("after Wait: state %d results %d progress %v", task.State(), task.ResultCount(), task.Progress())
	}
	image, err := client.Download(task, 1)
	if err != nil || !isJPEG(image) {
		t.Fatalf("Download(1) = %d bytes, %v", len(image), err)
	}
	path := filepath.Join(e.out, "go-flow-2.jpg")
	if err := client.DownloadToFile(task, 2, path); err != nil {
		t.Fatalf("DownloadToFile: %v", err)
	}
	if written, _ := os.ReadFile(path); !isJPEG(written) {
		t.Fatalf("%s is not a JPEG", path)
	}
	// Results are numbered from 1, as data.image_1: 0, a negative number and 3 are none of them.
	for _, number := range []int{3, 0, -1} {
		_, err := client.Download(task, number)
		if !errors.Is(err, backdrop.ErrUsage) || asError(t, err).Code != backdrop.CodeResultNumberOutOfRange {
			t.Fatalf("Download(%d) = %v", number, err)
		}
		if !strings.Contains(err.Error(), "image_1") {
			t.Fatalf("Download(%d) does not say how results are numbered: %v", number, err)
		}
	}
	if client.RequestsSent() < 2 {
		t.Fatalf("RequestsSent = %d", client.RequestsSent())
	}
}

func TestACreditCapRefusesTheCreateThatWouldPassIt(t *testing.T) {
	e := testEnv(t)
	client, err := backdrop.NewClient(backdrop.Config{APIKey: e.key, BaseURL: e.url, QPS: 10,
		PollInterval: 100 * time.Millisecond, MaxCredits: 6})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	req := backdrop.Request{ImagePath: e.fixture, Prompt: "a marble countertop", BatchSize: 2}
	task, err := client.CreateTask(req)
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	defer task.Close()
	if spent, err := client.CreditsSpent(); err != nil || spent != 6 {
		t.Fatalf("CreditsSpent = %d, %v", spent, err)
	}
	sent := client.RequestsSent()
	_, err = client.CreateTask(req)
	if !errors.Is(err, backdrop.ErrCreditCap) || asError(t, err).Code != backdrop.CodeCreditCap {
		t.Fatalf("a create past the cap = %v", err)
	}
	if client.RequestsSent() != sent {
		t.Fatalf("a create past the cap sent a request")
	}
	if _, err := newClient(t, e.url, e.key).CreditsSpent(); !errors.Is(err, backdrop.ErrUsage) {
		t.Fatalf("CreditsSpent without a cap = %v", err)
	}
}

func TestErrorsMatchTheirFamilies(t *testing.T) {
	e := testEnv(t)
	client := newClient(t, e.url, e.key)

	unknown, err := backdrop.ResumeTask("no-such-task")
	if err != nil {
		t.Fatal(err)
	}
	defer unknown.Close()
	err = client.Poll(unknown)
	if !errors.Is(err, backdrop.ErrNotFound) || !errors.Is(err, backdrop.ErrService) {
		t.Fatalf("Poll(unknown) = %v", err)
	}
	if be := asError(t, err); be.HTTPStatus != 404 || be.TaskID != "no-such-task" ||
		be.Recovery != backdrop.RecoveryResultsLost || be.Transient {
		t.Fatalf("Poll(unknown) detail = %+v", be)
	}
	if !errors.Is(err, backdrop.ErrResultsLost) || errors.Is(err, backdrop.ErrMaybeCreated) {
		t.Fatalf("Poll(unknown) = %v: its results are lost, no create is in doubt", err)
	}

	failing, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach emulator:fail=-17", BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer failing.Close()
	err = client.Wait(context.Background(), failing, nil)
	if !errors.Is(err, backdrop.ErrTaskFailed) || !errors.Is(err, backdrop.ErrTask) {
		t.Fatalf("Wait(failing) = %v", err)
	}
	if be := asError(t, err); !be.HasTaskState || be.TaskState != -17 || be.TaskID != failing.ID() ||
		be.Transient || be.Recovery != backdrop.RecoveryPermanent {
		t.Fatalf("Wait(failing) detail = %+v", be)
	}

	wrongKey := "wrong-key-93be0d5f21"
	stranger := newClient(t, e.url, wrongKey)
	_, err = stranger.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1})
	if !errors.Is(err, backdrop.ErrUnauthorized) || asError(t, err).HTTPStatus != 401 {
		t.Fatalf("CreateTask(wrong key) = %v", err)
	}
	if strings.Contains(err.Error(), wrongKey) {
		t.Fatalf("the key shows in %q", err)
	}
	if _, err := backdrop.NewClient(backdrop.Config{APIKey: " ", BaseURL: e.url}); !errors.Is(err, backdrop.ErrUsage) {
		t.Fatalf("NewClient(blank key) = %v", err)
	}
}

func TestACreateThatMayHaveBeenChargedIsNotTransient(t *testing.T) {
	e := testEnv(t)
	for _, name := range []string{"BACKDROP_TEST_URL_DROP", "BACKDROP_TEST_URL_504", "BACKDROP_TEST_URL_GARBLED"} {
		url := os.Getenv(name)
		if url == "" {
			t.Fatalf("%s is not set: run crates/ffi/tests/run.sh", name)
		}
		client := newClient(t, url, e.key)
		_, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1})
		if !errors.Is(err, backdrop.ErrMaybeCreated) {
			t.Fatalf("%s: CreateTask = %v, want ErrMaybeCreated", name, err)
		}
		if be := asError(t, err); be.Transient || be.Recovery != backdrop.RecoveryUnconfirmed {
			t.Fatalf("%s: detail = %+v", name, be)
		}
		if errors.Is(err, backdrop.ErrResumable) {
			t.Fatalf("%s: %v has no task id to resume", name, err)
		}
	}
}

func TestContextCancelsTheWait(t *testing.T) {
	e := testEnv(t)
	client := newClient(t, e.never, e.key)
	task, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()

	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err = client.Wait(ctx, task, func(backdrop.Progress) {
		calls++
		if calls == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, backdrop.ErrCanceled) || calls != 2 {
		t.Fatalf("Wait(cancelled) = %v after %d calls", err, calls)
	}
	if asError(t, err).TaskID != task.ID() {
		t.Fatalf("the error lost the task id: %+v", asError(t, err))
	}
	if err := client.Wait(ctx, task, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(done context) = %v", err)
	}

	deadline, stop := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer stop()
	started := time.Now()
	err = client.Wait(deadline, task, nil)
	if !errors.Is(err, backdrop.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait(deadline) = %v", err)
	}
	if elapsed := time.Since(started); elapsed > 5*time.Second {
		t.Fatalf("Wait(deadline) took %v", elapsed)
	}
	if be := asError(t, err); !be.HasTaskState || be.TaskState <= 1 {
		t.Fatalf("Wait(deadline) detail = %+v", be)
	}
}

func TestCloseIsIdempotentAndStopsWaits(t *testing.T) {
	e := testEnv(t)
	client, err := backdrop.NewClient(backdrop.Config{APIKey: e.key, BaseURL: e.never, QPS: 10, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	task, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()

	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- client.Wait(context.Background(), task, func(backdrop.Progress) { once.Do(func() { close(started) }) })
	}()
	<-started
	var closers sync.WaitGroup
	for i := 0; i < 4; i++ {
		closers.Add(1)
		go func() {
			defer closers.Done()
			if err := client.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}()
	}
	closers.Wait()
	select {
	case err := <-done:
		if !errors.Is(err, backdrop.ErrCanceled) || !errors.Is(err, backdrop.ErrClosed) {
			t.Fatalf("Wait after Close = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the wait")
	}
	_, err = client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach"})
	if !errors.Is(err, backdrop.ErrClosed) || !errors.Is(err, backdrop.ErrUsage) {
		t.Fatalf("CreateTask after Close = %v", err)
	}
	if err := client.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := task.Close(); err != nil || task.Close() != nil {
		t.Fatal("Task.Close is not idempotent")
	}
	if err := client.Poll(task); !errors.Is(err, backdrop.ErrClosed) {
		t.Fatalf("Poll(closed task) = %v", err)
	}
}

func TestPanicInTheProgressFunctionIsReraised(t *testing.T) {
	e := testEnv(t)
	client := newClient(t, e.never, e.key)
	task, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a beach", BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	recovered := func() (r any) {
		defer func() { r = recover() }()
		_ = client.Wait(context.Background(), task, func(backdrop.Progress) { panic("stop here") })
		return nil
	}()
	if recovered != "stop here" {
		t.Fatalf("recovered %v", recovered)
	}
	// The client still works.
	if err := client.Poll(task); err != nil {
		t.Fatalf("Poll after the panic: %v", err)
	}
}

func TestManyGoroutinesShareOneClient(t *testing.T) {
	e := testEnv(t)
	client := newClient(t, e.url, e.key)
	before := counters(t, e.url)
	const goroutines = 16
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for i := 0; i < goroutines; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			task, err := client.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: fmt.Sprintf("scene %d", i), BatchSize: 1})
			if err != nil {
				errs <- err
				return
			}
			defer task.Close()
			// Readers of the task while it is being waited for.
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
						_ = task.State() + int32(task.ResultCount())
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
			err = client.Wait(context.Background(), task, nil)
			close(stop)
			if err != nil {
				errs <- err
				return
			}
			image, err := client.Download(task, 1)
			if err != nil || !isJPEG(image) {
				errs <- fmt.Errorf("download: %d bytes, %v", len(image), err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after := counters(t, e.url)
	if after["responses_429"] != before["responses_429"] {
		t.Fatalf("429 answers went from %v to %v: one client must keep every goroutine within the key's QPS",
			before["responses_429"], after["responses_429"])
	}
	created := after["tasks_created"].(float64) - before["tasks_created"].(float64)
	if created != goroutines {
		t.Fatalf("%v tasks created, want %d", created, goroutines)
	}
}

func TestResumeFromATaskID(t *testing.T) {
	e := testEnv(t)
	var saved string
	func() {
		first := newClient(t, e.url, e.key)
		task, err := first.CreateTask(backdrop.Request{ImagePath: e.fixture, Prompt: "a stone wall", BatchSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		saved = task.ID()
		task.Close()
		first.Close()
	}()
	second := newClient(t, e.url, e.key)
	task, err := backdrop.ResumeTask(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer task.Close()
	if err := second.Wait(context.Background(), task, nil); err != nil {
		t.Fatalf("Wait(resumed) = %v", err)
	}
	if image, err := second.Download(task, 1); err != nil || !isJPEG(image) {
		t.Fatalf("Download(resumed) = %v", err)
	}
	if _, err := backdrop.ResumeTask("  "); !errors.Is(err, backdrop.ErrUsage) {
		t.Fatalf("ResumeTask(blank) = %v", err)
	}
}

func TestUnclosedObjectsAreCleanedUp(t *testing.T) {
	e := testEnv(t)
	for i := 0; i < 3; i++ {
		client, err := backdrop.NewClient(backdrop.Config{APIKey: e.key, BaseURL: e.url})
		if err != nil {
			t.Fatal(err)
		}
		task, err := backdrop.ResumeTask("some-task")
		if err != nil {
			t.Fatal(err)
		}
		_ = client
		_ = task
	}
	// The cleanups free the C objects; nothing may crash.
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(50 * time.Millisecond) // cleanups run on their own goroutine
	}
}
