/*
 * The C test suite of libbackdrop, against emulators started by tests/run.sh.
 *
 * Built with -std=c11 -Wall -Wextra -Werror -Wpedantic, once with ASan + UBSan and once for
 * valgrind. Environment (set by run.sh):
 *   BACKDROP_TEST_URL          emulator: key BACKDROP_TEST_KEY, quick tasks, --qps 20
 *   BACKDROP_TEST_URL_EXPIRED  emulator with --expire-results
 *   BACKDROP_TEST_URL_NEVER    emulator with --never-finish-rate 1
 *   BACKDROP_TEST_URL_500      emulator with --error-500-rate 1
 *   BACKDROP_TEST_URL_STRICT   emulator with --qps 1
 *   BACKDROP_TEST_URL_DROP     emulator with --drop-rate 1 (connections closed unanswered)
 *   BACKDROP_TEST_KEY          the emulators' key
 *   BACKDROP_TEST_FIXTURE      a transparent PNG (tests/fixtures/bottle.png)
 *   BACKDROP_TEST_OUT          a writable folder
 *   BACKDROP_TEST_VERSION      the version the library must report
 *   BACKDROP_TEST_URL_504      emulator whose creates are accepted, then answered 504
 *   BACKDROP_TEST_URL_GARBLED  emulator whose creates are accepted, then answered a cut HTTP 200
 *   BACKDROP_TEST_PNG_FIXTURES core's PNG fixtures and their verdicts.txt (write-png-fixtures)
 *
 * Usage: test_backdrop [TEST_NAME...]   (no name: every test but panic_boundary, which needs a
 * library built with the test-hooks feature; run.sh runs it separately).
 */
#define _POSIX_C_SOURCE 200809L

#include <backdrop.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Present only in a library built with the `test-hooks` feature. */
extern backdrop_result backdrop_test_panic(backdrop_error **error_out) __attribute__((weak));

/* ------------------------------------------------------------------------------------------ */
/* A small harness                                                                            */

static int check_failures;
static const char *current_test = "";

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__,            \
                    current_test, #cond);                                                     \
            check_failures++;                                                                 \
        }                                                                                     \
    } while (0)

#define CHECK_CODE(expr, expected) check_code_at(__FILE__, __LINE__, #expr, (expr), (expected))

static int check_code_at(const char *file, int line, const char *text, backdrop_result got,
                         backdrop_result expected) {
    if (got != expected) {
        fprintf(stderr, "%s:%d: [%s] %s returned %s (%u), expected %s (%u)\n", file, line,
                current_test, text, backdrop_result_name(got), (unsigned)got,
                backdrop_result_name(expected), (unsigned)expected);
        check_failures++;
        return 0;
    }
    return 1;
}

/* Checks a call's code and, when it failed, its error detail; frees the error. */
#define CHECK_ERR(expr, expected, err)                                                        \
    do {                                                                                      \
        backdrop_result code_ = (expr);                                                       \
        if (check_code_at(__FILE__, __LINE__, #expr, code_, (expected)) && code_ != 0) {      \
            CHECK((err) != NULL);                                                             \
            CHECK(backdrop_error_code(err) == code_);                                         \
            CHECK(strlen(backdrop_error_message(err)) > 0);                                   \
        }                                                                                     \
        if (code_ != (expected) && (err) != NULL) {                                           \
            fprintf(stderr, "    detail: %s\n", backdrop_error_message(err));                 \
        }                                                                                     \
        backdrop_error_free(err);                                                             \
        (err) = NULL;                                                                         \
    } while (0)

static const char *env(const char *name) {
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0') {
        fprintf(stderr, "test_backdrop: %s is not set (run crates/ffi/tests/run.sh)\n", name);
        exit(2);
    }
    return value;
}

/* ------------------------------------------------------------------------------------------ */
/* The emulator's counters (GET /__emulator/counters over a plain socket)                    */

static long long counter(const char *base_url, const char *name) {
    const char *hostport = strstr(base_url, "://");
    char host[64];
    int port = 0;
    char request[256];
    char response[8192];
    size_t used = 0;
    ssize_t n;
    struct sockaddr_in address;
    int fd;
    char key[96];
    const char *at;

    if (hostport == NULL || sscanf(hostport + 3, "%63[^:]:%d", host, &port) != 2) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        close(fd);
        return -1;
    }
    snprintf(request, sizeof request,
             "GET /__emulator/counters HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
             host, port);
    if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
        close(fd);
        return -1;
    }
    while (used + 1 < sizeof response &&
           (n = read(fd, response + used, sizeof response - 1 - used)) > 0) {
        used += (size_t)n;
    }
    close(fd);
    response[used] = '\0';
    snprintf(key, sizeof key, "\"%s\":", name);
    at = strstr(response, key);
    return at != NULL ? strtoll(at + strlen(key), NULL, 10) : -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Fixtures                                                                                   */

static const char *key(void) { return env("BACKDROP_TEST_KEY"); }

static const backdrop_client *client_for_key(const char *base_url, const char *api_key,
                                             uint32_t qps, uint32_t attempts) {
    backdrop_client_builder *builder = NULL;
    const backdrop_client *client = NULL;
    backdrop_error *err = NULL;
    backdrop_result code;

    CHECK_CODE(backdrop_client_builder_new(api_key, &builder), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, base_url), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_qps(builder, qps), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(builder, 100), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_retry(builder, attempts, 20, 200), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_connect_timeout_ms(builder, 5000), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_request_timeout_ms(builder, 30000), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_download_timeout_ms(builder, 30000), BACKDROP_OK);
    code = backdrop_client_builder_build(builder, &client, &err);
    if (code != BACKDROP_OK) {
        fprintf(stderr, "[%s] cannot build a client: %s\n", current_test,
                backdrop_error_message(err));
        check_failures++;
    }
    backdrop_error_free(err);
    backdrop_client_builder_free(builder);
    return client;
}

/* Clients ask for half the emulators' QPS of 20: under valgrind, threads run one at a time, so
 * requests granted a rate-limit slot can reach the server bunched together; the headroom keeps
 * the zero-429 checks about the library, not about valgrind's scheduler. */
enum { CLIENT_QPS = 10, EMULATOR_QPS = 20 };

static const backdrop_client *client_for(const char *env_name) {
    return client_for_key(env(env_name), key(), CLIENT_QPS, 3);
}

static backdrop_request *request_with(const char *prompt, uint32_t batch) {
    backdrop_request *request = NULL;
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_path(request, env("BACKDROP_TEST_FIXTURE")),
               BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_prompt(request, prompt), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_batch_size(request, batch), BACKDROP_OK);
    return request;
}

static backdrop_task *create(const backdrop_client *client, const backdrop_request *request) {
    backdrop_task *task = NULL;
    backdrop_error *err = NULL;
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err), BACKDROP_OK, err);
    return task;
}

/* A minimal PNG header: signature, IHDR (width, height, depth 8, colour type), then IDAT/IEND
 * chunk headers: enough for the header check (BACKDROP_VALIDATE_HEADER_ONLY, and the header
 * rules, which the full check applies first), not a whole PNG. */
static size_t png_header(uint8_t *out, uint32_t width, uint32_t height, uint8_t color_type) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t at = 0;
    int i;
    memcpy(out, signature, 8);
    at = 8;
    out[at++] = 0, out[at++] = 0, out[at++] = 0, out[at++] = 13;
    memcpy(out + at, "IHDR", 4), at += 4;
    for (i = 3; i >= 0; i--) out[at++] = (uint8_t)(width >> (8 * i));
    for (i = 3; i >= 0; i--) out[at++] = (uint8_t)(height >> (8 * i));
    out[at++] = 8, out[at++] = color_type, out[at++] = 0, out[at++] = 0, out[at++] = 0;
    memset(out + at, 0, 4), at += 4; /* CRC, not checked */
    out[at++] = 0, out[at++] = 0, out[at++] = 0, out[at++] = 4;
    memcpy(out + at, "IDAT", 4), at += 4;
    memset(out + at, 0, 8), at += 8;
    memset(out + at, 0, 4), at += 4;
    memcpy(out + at, "IEND", 4), at += 4;
    memset(out + at, 0, 4), at += 4;
    return at;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *file = fopen(path, "rb");
    uint8_t *data;
    long size;
    if (file == NULL) return NULL;
    fseek(file, 0, SEEK_END);
    size = ftell(file);
    fseek(file, 0, SEEK_SET);
    data = malloc((size_t)size);
    if (data != NULL && fread(data, 1, (size_t)size, file) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(file);
    *len = (size_t)size;
    return data;
}

static int is_jpeg(const uint8_t *data, size_t len) {
    return len > 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

/* ------------------------------------------------------------------------------------------ */
/* Progress callbacks                                                                         */

struct progress_log {
    int calls;
    int cancel_after; /* 0: never */
    int32_t last_state;
    double last_progress;
    char task_id[128];
    const backdrop_client *client; /* for the nested-call test */
    backdrop_result nested_code;
};

static uint32_t log_progress(void *userdata, const backdrop_task *view) {
    struct progress_log *log = userdata;
    const char *id = backdrop_task_id(view);
    log->calls++;
    log->last_state = backdrop_task_state(view);
    log->last_progress = backdrop_task_progress(view);
    if (id != NULL) {
        snprintf(log->task_id, sizeof log->task_id, "%s", id);
    }
    if (log->client != NULL) {
        /* A blocking call from inside the callback is refused, not a deadlock or a crash. */
        backdrop_task *view_copy = NULL;
        if (backdrop_task_from_id(id, &view_copy) == BACKDROP_OK) {
            log->nested_code = backdrop_client_poll(log->client, view_copy, NULL);
            backdrop_task_free(view_copy);
        }
    }
    if (log->cancel_after > 0 && log->calls >= log->cancel_after) {
        return BACKDROP_PROGRESS_CANCEL;
    }
    return BACKDROP_PROGRESS_CONTINUE;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                      */

static void test_version_and_messages(void) {
    char small[8];
    char big[256];
    size_t needed;

    CHECK(strcmp(backdrop_version(), env("BACKDROP_TEST_VERSION")) == 0);
    {
        /* The header's compile-time version is the library's run-time one. */
        char compiled[64];
        snprintf(compiled, sizeof compiled, "%u.%u.%u", (unsigned)BACKDROP_VERSION_MAJOR,
                 (unsigned)BACKDROP_VERSION_MINOR, (unsigned)BACKDROP_VERSION_PATCH);
        CHECK(strcmp(backdrop_version(), compiled) == 0);
    }
#if BACKDROP_VERSION_MAJOR > 0 || BACKDROP_VERSION_MINOR >= 1
    CHECK(1); /* usable in #if */
#else
    CHECK(0);
#endif
    needed = backdrop_result_message(BACKDROP_ERR_TIMEOUT, NULL, 0);
    CHECK(needed > 10);
    memset(small, 'x', sizeof small);
    CHECK(backdrop_result_message(BACKDROP_ERR_TIMEOUT, small, sizeof small) == needed);
    CHECK(small[7] == '\0' && strlen(small) == 7);
    CHECK(backdrop_result_message(BACKDROP_ERR_TIMEOUT, big, sizeof big) == needed);
    CHECK(strlen(big) + 1 == needed);
    CHECK(backdrop_result_message(BACKDROP_OK, big, sizeof big) > 1);
    CHECK(strcmp(big, "success") == 0);
    CHECK(backdrop_result_message(4242, big, sizeof big) > 1);
    CHECK(strstr(big, "4242") != NULL);
    CHECK(strcmp(backdrop_result_name(BACKDROP_ERR_PANIC), "BACKDROP_ERR_PANIC") == 0);
    CHECK(strcmp(backdrop_result_name(4242), "BACKDROP_UNKNOWN") == 0);
    CHECK(strstr(backdrop_task_state_meaning(-17), "prompt") != NULL);
    CHECK(backdrop_task_state_meaning(-17) == backdrop_task_state_meaning(-17));
}

static void test_validation(void) {
    uint8_t png[128];
    size_t len;
    backdrop_png_info info;
    backdrop_error *err = NULL;
    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1};
    char missing[512];

    memset(&info, 0, sizeof info);
    CHECK_ERR(backdrop_validate_png_file(env("BACKDROP_TEST_FIXTURE"), &info, &err), BACKDROP_OK,
              err);
    CHECK(info.width == 480 && info.height == 640 && info.alpha_channel && info.color_type == 6);
    CHECK(info.file_size > 0);
    /* info_out is optional */
    CHECK_ERR(backdrop_validate_png_file(env("BACKDROP_TEST_FIXTURE"), NULL, NULL), BACKDROP_OK,
              err);

    len = png_header(png, 512, 512, 6);
    CHECK_ERR(backdrop_validate_png_bytes_with(png, len, BACKDROP_VALIDATE_HEADER_ONLY, &info, &err),
              BACKDROP_OK, err);
    CHECK(info.width == 512 && !info.pixels_checked);
    /* The whole file is checked by default: headers alone are a damaged PNG. */
    CHECK_ERR(backdrop_validate_png_bytes(png, len, &info, &err), BACKDROP_ERR_INVALID_DAMAGED_PNG,
              err);

    /* Outputs only on success: a failure leaves info as it was. */
    memset(&info, 0xAB, sizeof info);
    len = png_header(png, 800, 600, 2);
    CHECK_ERR(backdrop_validate_png_bytes(png, len, &info, &err),
              BACKDROP_ERR_INVALID_NO_TRANSPARENCY, err);
    CHECK(info.width == 0xABABABABu);
    len = png_header(png, 100, 100, 6);
    CHECK_ERR(backdrop_validate_png_bytes(png, len, &info, &err),
              BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL, err);
    len = png_header(png, 5000, 300, 6);
    CHECK_ERR(backdrop_validate_png_bytes(png, len, &info, &err),
              BACKDROP_ERR_INVALID_IMAGE_TOO_LARGE, err);
    CHECK_ERR(backdrop_validate_png_bytes(jpeg, sizeof jpeg, &info, &err),
              BACKDROP_ERR_INVALID_NOT_PNG, err);
    CHECK_ERR(backdrop_validate_png_bytes(jpeg, 0, &info, &err),
              BACKDROP_ERR_INVALID_EMPTY_FILE, err);
    CHECK_ERR(backdrop_validate_png_bytes(png, 20, &info, &err),
              BACKDROP_ERR_INVALID_CORRUPT_PNG, err);
    snprintf(missing, sizeof missing, "%s/no-such-file.png", env("BACKDROP_TEST_OUT"));
    CHECK_ERR(backdrop_validate_png_file(missing, &info, &err), BACKDROP_ERR_IO, err);
}

static void test_request_validation(void) {
    const char *url = env("BACKDROP_TEST_URL");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_request *request = NULL;
    backdrop_task *task = NULL;
    backdrop_error *err = NULL;
    char long_prompt[1100];
    uint8_t png[128];
    size_t len;
    long long creates_before = counter(url, "create_requests");

    /* No image, no background. */
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_IMAGE_SOURCE, err);
    CHECK_CODE(backdrop_request_set_image_path(request, env("BACKDROP_TEST_FIXTURE")),
               BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_BACKGROUND, err);
    /* Both a prompt and a scene type. */
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_scene_type(request, 105), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_BACKGROUND, err);
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err),
              BACKDROP_ERR_INVALID_BACKGROUND, err);
    CHECK(task == NULL);
    backdrop_request_free(request);

    /* A prompt of 1025 characters. */
    memset(long_prompt, 'a', 1025);
    long_prompt[1025] = '\0';
    request = request_with(long_prompt, 1);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_PROMPT_TOO_LONG,
              err);
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err),
              BACKDROP_ERR_INVALID_PROMPT_TOO_LONG, err);
    long_prompt[1024] = '\0';
    CHECK_CODE(backdrop_request_set_prompt(request, long_prompt), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    CHECK_CODE(backdrop_request_set_prompt(request, "   "), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_EMPTY_PROMPT, err);
    CHECK_CODE(backdrop_request_set_prompt(request, "\xff\xfe"), BACKDROP_ERR_INVALID_UTF8);
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_batch_size(request, 3), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_BATCH_SIZE, err);
    CHECK_CODE(backdrop_request_set_batch_size(request, 1), BACKDROP_OK);
    /* Two image sources. */
    CHECK_CODE(backdrop_request_set_image_url(request, "https://example.com/a.png"), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_IMAGE_SOURCE, err);
    backdrop_request_free(request);

    /* A bad URL, a bad scene type: each is reported until it is fixed. */
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_url(request, "ftp://example.com/a.png"), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_scene_type(request, 0), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_SCENE_TYPE, err);
    CHECK_CODE(backdrop_request_set_scene_type(request, 105), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_IMAGE_URL, err);
    CHECK_CODE(backdrop_request_set_image_url(request, "https://example.com/a.png"), BACKDROP_OK);
    CHECK_CODE(backdrop_request_validate(request, &err), BACKDROP_OK);
    backdrop_request_free(request);

    /* An opaque PNG and a small one, as bytes: refused before sending. */
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
    len = png_header(png, 800, 600, 2);
    CHECK_CODE(backdrop_request_set_image_bytes(request, png, len, "opaque.png"), BACKDROP_OK);
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err),
              BACKDROP_ERR_INVALID_NO_TRANSPARENCY, err);
    len = png_header(png, 64, 64, 6);
    CHECK_CODE(backdrop_request_set_image_bytes(request, png, len, NULL), BACKDROP_OK);
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err),
              BACKDROP_ERR_INVALID_IMAGE_TOO_SMALL, err);
    CHECK(task == NULL);
    backdrop_request_free(request);

    /* Nothing of the above reached the service. */
    CHECK(counter(url, "create_requests") == creates_before);
    backdrop_client_free(client);
}

static void test_whole_flow(void) {
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_request *request = request_with("a marble countertop in soft morning light", 2);
    backdrop_task *task;
    backdrop_bytes *bytes = NULL;
    backdrop_error *err = NULL;
    struct progress_log log;
    char path[512];
    size_t len;
    uint8_t *file;
    uint64_t sent_before;

    CHECK_CODE(backdrop_request_set_negative_prompt(request, "people"), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    sent_before = backdrop_client_requests_sent(client);
    task = create(client, request);
    if (task == NULL) goto out;
    CHECK(strlen(backdrop_task_id(task)) > 0);
    CHECK(backdrop_task_state(task) == 0 && backdrop_task_result_count(task) == 0);
    CHECK(backdrop_task_progress(task) == -1.0);

    /* Downloading before the task succeeded is refused. */
    CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err),
              BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
    CHECK(bytes == NULL);

    CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_OK, err);
    CHECK(backdrop_task_state(task) != 1 || backdrop_task_result_count(task) == 2);

    memset(&log, 0, sizeof log);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, log_progress, &log, &err), BACKDROP_OK,
              err);
    CHECK(log.calls >= 1);
    CHECK(log.last_state == 1);
    CHECK(log.last_progress == 100.0);
    CHECK(strcmp(log.task_id, backdrop_task_id(task)) == 0);
    CHECK(backdrop_task_state(task) == 1);
    CHECK(backdrop_task_result_count(task) == 2);
    CHECK(backdrop_client_requests_sent(client) > sent_before);

    CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err), BACKDROP_OK, err);
    CHECK(is_jpeg(backdrop_bytes_data(bytes), backdrop_bytes_len(bytes)));
    CHECK(strcmp(backdrop_bytes_extension(bytes), "jpg") == 0);
    CHECK(strcmp(backdrop_bytes_mime_type(bytes), "image/jpeg") == 0);
    backdrop_bytes_free(bytes);
    bytes = NULL;

    snprintf(path, sizeof path, "%s/flow-2.jpg", env("BACKDROP_TEST_OUT"));
    CHECK_ERR(backdrop_client_download_to_file(client, task, 2, path, &err), BACKDROP_OK, err);
    file = read_file(path, &len);
    CHECK(file != NULL && is_jpeg(file, len));
    free(file);
    CHECK_ERR(backdrop_client_download(client, task, 3, &bytes, &err),
              BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE, err);
    /* Results are numbered from 1, as the spec's data.image_1: 0 is no result. */
    CHECK_CODE(backdrop_client_download(client, task, 0, &bytes, &err),
               BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE);
    CHECK(err != NULL && strstr(backdrop_error_message(err), "start at 1") != NULL);
    CHECK(err != NULL && strstr(backdrop_error_message(err), "image_1 and image_2") != NULL);
    backdrop_error_free(err);
    err = NULL;
    CHECK(bytes == NULL);
    snprintf(path, sizeof path, "%s/no-such-dir/x.jpg", env("BACKDROP_TEST_OUT"));
    CHECK_ERR(backdrop_client_download_to_file(client, task, 1, path, &err), BACKDROP_ERR_IO, err);
    backdrop_task_free(task);

    /* The same flow from bytes in memory, one image. */
    file = read_file(env("BACKDROP_TEST_FIXTURE"), &len);
    CHECK(file != NULL);
    if (file != NULL) {
        backdrop_request *from_bytes = NULL;
        CHECK_CODE(backdrop_request_new(&from_bytes), BACKDROP_OK);
        CHECK_CODE(backdrop_request_set_image_bytes(from_bytes, file, len, "bottle.png"),
                   BACKDROP_OK);
        free(file); /* copied by the library */
        CHECK_CODE(backdrop_request_set_prompt(from_bytes, "a linen tablecloth"), BACKDROP_OK);
        CHECK_CODE(backdrop_request_set_batch_size(from_bytes, 1), BACKDROP_OK);
        task = create(client, from_bytes);
        backdrop_request_free(from_bytes);
        CHECK_ERR(backdrop_client_wait(client, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
        CHECK(backdrop_task_result_count(task) == 1);
        CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err), BACKDROP_OK, err);
        CHECK(backdrop_bytes_len(bytes) > 100);
        backdrop_bytes_free(bytes);
        backdrop_task_free(task);
    }
out:
    backdrop_request_free(request);
    backdrop_client_free(client);
}

/* A client with a credit cap: the create that would pass it is refused with its own code and
 * nothing is sent; the credits spent follow the accounting rule. */
static void test_credit_cap(void) {
    const char *url = env("BACKDROP_TEST_URL");
    backdrop_client_builder *builder = NULL;
    const backdrop_client *capped = NULL;
    const backdrop_client *plain = client_for("BACKDROP_TEST_URL");
    backdrop_request *two = request_with("a marble countertop", 2);
    backdrop_request *one = request_with("a marble countertop", 1);
    backdrop_task *task = NULL;
    backdrop_task *refused = NULL;
    backdrop_error *err = NULL;
    uint64_t spent = 99;
    long long creates;

    CHECK_CODE(backdrop_client_builder_new(key(), &builder), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, url), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_qps(builder, CLIENT_QPS), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(builder, 100), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_max_credits(builder, 9), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_max_credits(NULL, 9), BACKDROP_ERR_NULL_PARAMETER);
    CHECK_ERR(backdrop_client_builder_build(builder, &capped, &err), BACKDROP_OK, err);
    backdrop_client_builder_free(builder);
    if (capped == NULL) goto out;

    CHECK_CODE(backdrop_client_credits_spent(capped, &spent), BACKDROP_OK);
    CHECK(spent == 0);
    /* 6 credits reserved for two images: within 9. */
    task = create(capped, two);
    if (task == NULL) goto out;
    CHECK_CODE(backdrop_client_credits_spent(capped, &spent), BACKDROP_OK);
    CHECK(spent == 6);
    /* Another 6 would pass 9: refused, nothing sent, no output written. */
    creates = counter(url, "create_requests");
    refused = (backdrop_task *)&spent;
    CHECK_ERR(backdrop_client_create_task(capped, two, &refused, &err), BACKDROP_ERR_CREDIT_CAP,
              err);
    CHECK(refused == (backdrop_task *)&spent);
    CHECK(counter(url, "create_requests") == creates);
    CHECK_CODE(backdrop_client_create_task(capped, two, &refused, &err), BACKDROP_ERR_CREDIT_CAP);
    CHECK(err != NULL && backdrop_error_recovery(err) == BACKDROP_RECOVERY_RETRY);
    CHECK(err != NULL && !backdrop_error_may_have_created_task(err));
    CHECK(err != NULL && strstr(backdrop_error_message(err), "credit cap") != NULL);
    backdrop_error_free(err);
    err = NULL;
    /* One image (3 credits) still fits. */
    {
        backdrop_task *small = create(capped, one);
        CHECK(small != NULL);
        CHECK_CODE(backdrop_client_credits_spent(capped, &spent), BACKDROP_OK);
        CHECK(spent == 9);
        if (small != NULL) {
            CHECK_ERR(backdrop_client_wait(capped, small, 30000, NULL, NULL, &err), BACKDROP_OK,
                      err);
            backdrop_task_free(small);
        }
    }
    /* The two-image task succeeds: charged as reserved. */
    CHECK_ERR(backdrop_client_wait(capped, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
    CHECK_CODE(backdrop_client_credits_spent(capped, &spent), BACKDROP_OK);
    CHECK(spent == 9);
    /* A client without a cap has no total to give. */
    spent = 42;
    CHECK_CODE(backdrop_client_credits_spent(plain, &spent), BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK(spent == 42);
    CHECK_CODE(backdrop_client_credits_spent(capped, NULL), BACKDROP_ERR_NULL_PARAMETER);
out:
    backdrop_task_free(task);
    backdrop_request_free(two);
    backdrop_request_free(one);
    backdrop_client_free(capped);
    backdrop_client_free(plain);
}

static void test_service_errors(void) {
    const char *wrong_key = "wrong-key-7f3a9c21b4";
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    const backdrop_client *stranger = client_for_key(env("BACKDROP_TEST_URL"), wrong_key, CLIENT_QPS, 3);
    backdrop_request *request = request_with("a beach", 1);
    backdrop_task *task = NULL;
    backdrop_error *err = NULL;
    int32_t state = 0;

    /* 401: the key is refused, and it never shows in the message. */
    CHECK_CODE(backdrop_client_create_task(stranger, request, &task, &err),
               BACKDROP_ERR_UNAUTHORIZED);
    CHECK(task == NULL);
    CHECK(backdrop_error_http_status(err) == 401);
    CHECK(strstr(backdrop_error_message(err), wrong_key) == NULL);
    CHECK(!backdrop_error_is_transient(err));
    CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_PERMANENT);
    CHECK(backdrop_error_task_id(err) == NULL);
    backdrop_error_free(err);
    err = NULL;

    /* 404: an unknown task id. */
    CHECK_CODE(backdrop_task_from_id("  no-such-task  ", &task), BACKDROP_OK);
    CHECK(strcmp(backdrop_task_id(task), "no-such-task") == 0);
    CHECK_CODE(backdrop_client_poll(client, task, &err), BACKDROP_ERR_NOT_FOUND);
    CHECK(backdrop_error_http_status(err) == 404);
    CHECK(backdrop_error_task_id(err) != NULL &&
          strcmp(backdrop_error_task_id(err), "no-such-task") == 0);
    /* The service no longer knows a task it issued: its results are lost, maybe paid for; never
     * a reason to create it again on its own. */
    CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_RESULTS_LOST);
    CHECK(!backdrop_error_is_transient(err));
    backdrop_error_free(err);
    err = NULL;
    CHECK_ERR(backdrop_client_wait(client, task, 5000, NULL, NULL, &err), BACKDROP_ERR_NOT_FOUND,
              err);
    backdrop_task_free(task);
    task = NULL;

    /* A task that fails: state -17 through the emulator's prompt trigger. */
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach emulator:fail=-17"), BACKDROP_OK);
    task = create(client, request);
    CHECK_CODE(backdrop_client_wait(client, task, 30000, NULL, NULL, &err),
               BACKDROP_ERR_TASK_FAILED);
    CHECK(backdrop_error_task_state(err, &state) && state == -17);
    CHECK(!backdrop_error_task_state(err, NULL));
    CHECK(backdrop_error_task_id(err) != NULL &&
          strcmp(backdrop_error_task_id(err), backdrop_task_id(task)) == 0);
    CHECK(!backdrop_error_is_transient(err));
    CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_PERMANENT);
    CHECK(backdrop_error_http_status(err) == 0);
    backdrop_error_free(err);
    err = NULL;
    CHECK(backdrop_task_state(task) == 0); /* outputs only on success: not updated */
    CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_OK, err);
    CHECK(backdrop_task_state(task) == -17);
    CHECK_ERR(backdrop_client_download(client, task, 1, &(backdrop_bytes *){NULL}, &err),
              BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
    backdrop_task_free(task);
    task = NULL;

    /* A failure on the service's side (-8, processing timed out) is transient. */
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach emulator:fail=-8"), BACKDROP_OK);
    task = create(client, request);
    CHECK_CODE(backdrop_client_wait(client, task, 30000, NULL, NULL, &err),
               BACKDROP_ERR_TASK_FAILED);
    CHECK(backdrop_error_task_state(err, &state) && state == -8);
    CHECK(backdrop_error_is_transient(err));
    CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_RETRY);
    CHECK(!backdrop_error_may_have_created_task(err));
    backdrop_error_free(err);
    err = NULL;
    backdrop_task_free(task);
    task = NULL;

    /* The network: nothing listens on port 1. */
    {
        const backdrop_client *nowhere = client_for_key("http://127.0.0.1:1", key(), CLIENT_QPS, 2);
        CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
        CHECK_ERR(backdrop_client_create_task(nowhere, request, &task, &err),
                  BACKDROP_ERR_NETWORK, err);
        backdrop_client_free(nowhere);
    }

    backdrop_request_free(request);
    backdrop_client_free(stranger);
    backdrop_client_free(client);
}

static void test_fault_emulators(void) {
    backdrop_request *request = request_with("a beach", 1);
    backdrop_task *task = NULL;
    backdrop_bytes *bytes = NULL;
    backdrop_error *err = NULL;
    int32_t state = 0;

    /* Expired result URLs: 403 at download. */
    {
        const backdrop_client *client = client_for("BACKDROP_TEST_URL_EXPIRED");
        task = create(client, request);
        CHECK_ERR(backdrop_client_wait(client, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
        CHECK_CODE(backdrop_client_download(client, task, 1, &bytes, &err),
                   BACKDROP_ERR_RESULT_EXPIRED);
        CHECK(bytes == NULL);
        CHECK(backdrop_error_http_status(err) == 403);
        CHECK(backdrop_error_task_id(err) != NULL);
        backdrop_error_free(err);
        err = NULL;
        backdrop_task_free(task);
        backdrop_client_free(client);
    }

    /* A task that never finishes: the wait times out, keeping the id and the last state. */
    {
        const backdrop_client *client = client_for("BACKDROP_TEST_URL_NEVER");
        task = create(client, request);
        CHECK_CODE(backdrop_client_wait(client, task, 700, NULL, NULL, &err),
                   BACKDROP_ERR_TIMEOUT);
        CHECK(backdrop_error_task_state(err, &state) && state > 1);
        CHECK(backdrop_error_task_id(err) != NULL &&
              strcmp(backdrop_error_task_id(err), backdrop_task_id(task)) == 0);
        /* The task exists: resume it by id; starting over would pay twice. */
        CHECK(!backdrop_error_is_transient(err));
        CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_RESUME);
        CHECK(!backdrop_error_may_have_created_task(err));
        backdrop_error_free(err);
        err = NULL;
        backdrop_task_free(task);
        backdrop_client_free(client);
    }

    /* 500 on every request: a create answered 500 may have been passed on before the failure,
     * so it is "may have created" and never sent again; a poll gives up after its retries. */
    {
        const backdrop_client *client = client_for_key(env("BACKDROP_TEST_URL_500"), key(), CLIENT_QPS, 2);
        long long before = counter(env("BACKDROP_TEST_URL_500"), "responses_500_injected");
        task = NULL;
        CHECK_CODE(backdrop_client_create_task(client, request, &task, &err), BACKDROP_ERR_SERVER);
        CHECK(task == NULL);
        CHECK(backdrop_error_http_status(err) == 500);
        CHECK(!backdrop_error_is_transient(err));
        CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_UNCONFIRMED);
        CHECK(backdrop_error_may_have_created_task(err));
        backdrop_error_free(err);
        err = NULL;
        CHECK(counter(env("BACKDROP_TEST_URL_500"), "responses_500_injected") == before + 1);
        CHECK_CODE(backdrop_task_from_id("any", &task), BACKDROP_OK);
        CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_ERR_SERVER, err);
        backdrop_task_free(task);
        backdrop_client_free(client);
    }

    /* A connection closed after the create was sent: the task may exist, so the create is not
     * sent again (a second create would be a second charge). */
    {
        const char *url = env("BACKDROP_TEST_URL_DROP");
        const backdrop_client *client = client_for_key(url, key(), CLIENT_QPS, 3);
        long long before = counter(url, "create_requests");
        task = NULL;
        CHECK_CODE(backdrop_client_create_task(client, request, &task, &err),
                   BACKDROP_ERR_NETWORK_MAYBE_CREATED);
        CHECK(task == NULL);
        CHECK(backdrop_error_http_status(err) == 0);
        CHECK(backdrop_error_may_have_created_task(err));
        CHECK(!backdrop_error_is_transient(err));
        CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_UNCONFIRMED);
        backdrop_error_free(err);
        err = NULL;
        CHECK(counter(url, "create_requests") == before + 1);
        /* A query is safe to repeat: it is retried, then reported as a network failure. */
        CHECK_CODE(backdrop_task_from_id("any", &task), BACKDROP_OK);
        CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_ERR_NETWORK, err);
        backdrop_task_free(task);
        backdrop_client_free(client);
    }

    /* A create the service accepted (and charged) whose answer is a gateway's 504, or an HTTP 200
     * that cannot be read: "may have created", never transient, never sent again. */
    {
        const char *urls[2] = {env("BACKDROP_TEST_URL_504"), env("BACKDROP_TEST_URL_GARBLED")};
        const backdrop_result codes[2] = {BACKDROP_ERR_SERVER, BACKDROP_ERR_INVALID_RESPONSE};
        const uint16_t statuses[2] = {504, 200};
        int i;
        for (i = 0; i < 2; i++) {
            const backdrop_client *client = client_for_key(urls[i], key(), CLIENT_QPS, 3);
            long long before = counter(urls[i], "create_requests");
            long long tasks_before = counter(urls[i], "tasks_created");
            task = NULL;
            CHECK_CODE(backdrop_client_create_task(client, request, &task, &err), codes[i]);
            CHECK(task == NULL);
            CHECK(backdrop_error_http_status(err) == statuses[i]);
            CHECK(backdrop_error_may_have_created_task(err));
            CHECK(!backdrop_error_is_transient(err));
            CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_UNCONFIRMED);
            backdrop_error_free(err);
            err = NULL;
            CHECK(counter(urls[i], "create_requests") == before + 1);
            CHECK(counter(urls[i], "tasks_created") == tasks_before + 1);
            backdrop_client_free(client);
        }
    }

    /* 429: a client that ignores the key's QPS of 1, with no retries left. */
    {
        const backdrop_client *client =
            client_for_key(env("BACKDROP_TEST_URL_STRICT"), key(), 50, 1);
        backdrop_result code = BACKDROP_OK;
        int i;
        CHECK_CODE(backdrop_task_from_id("any", &task), BACKDROP_OK);
        for (i = 0; i < 6 && code != BACKDROP_ERR_RATE_LIMITED; i++) {
            backdrop_error_free(err);
            err = NULL;
            code = backdrop_client_poll(client, task, &err);
        }
        CHECK_CODE(code, BACKDROP_ERR_RATE_LIMITED);
        CHECK(backdrop_error_http_status(err) == 429);
        /* A poll refused: the task is unharmed, wait for it again. */
        CHECK(backdrop_error_recovery(err) == BACKDROP_RECOVERY_RESUME);
        CHECK(!backdrop_error_is_transient(err));
        backdrop_error_free(err);
        err = NULL;
        backdrop_task_free(task);
        backdrop_client_free(client);
    }
    backdrop_request_free(request);
}

static void test_builder_rules(void) {
    backdrop_client_builder *builder = NULL;
    const backdrop_client *client = NULL;
    const backdrop_client *second = NULL;
    backdrop_error *err = NULL;

    /* An empty key and a bad URL are configuration errors, reported at build. */
    CHECK_CODE(backdrop_client_builder_new("   ", &builder), BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &client, &err), BACKDROP_ERR_CONFIG, err);
    CHECK(client == NULL);
    backdrop_client_builder_free(builder);

    CHECK_CODE(backdrop_client_builder_new("secret-key-123456", &builder), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, "ftp://example.com"), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_build(builder, &client, &err), BACKDROP_ERR_CONFIG);
    CHECK(strstr(backdrop_error_message(err), "secret-key-123456") == NULL);
    backdrop_error_free(err);
    err = NULL;

    /* Out-of-range values change nothing. */
    CHECK_CODE(backdrop_client_builder_set_qps(builder, 0), BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_rate_limit(builder, 0, 1000),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_rate_limit(builder, 2, 0),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_connect_timeout_ms(builder, 0),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_request_timeout_ms(builder, 0),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_download_timeout_ms(builder, 0),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(builder, 0),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_poll_policy(builder, 2), BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_poll_policy(builder, BACKDROP_POLL_DOCUMENTED),
               BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_poll_policy(builder, BACKDROP_POLL_ADAPTIVE),
               BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_retry(builder, 0, 10, 10),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_retry(builder, 2, 100, 10),
               BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, "\xc3\x28"),
               BACKDROP_ERR_INVALID_UTF8);

    /* The failed build left the builder usable; a good build uses it up. */
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, env("BACKDROP_TEST_URL")),
               BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_rate_limit(builder, 2, 100), BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &client, &err), BACKDROP_OK, err);
    CHECK(client != NULL);
    CHECK_ERR(backdrop_client_builder_build(builder, &second, &err), BACKDROP_ERR_ALREADY_USED,
              err);
    CHECK(second == NULL);
    CHECK_CODE(backdrop_client_builder_set_qps(builder, 3), BACKDROP_ERR_ALREADY_USED);
    backdrop_client_builder_free(builder);
    backdrop_client_free(client);

    CHECK_CODE(backdrop_task_from_id("   ", &(backdrop_task *){NULL}),
               BACKDROP_ERR_INVALID_ARGUMENT);
}

static void test_null_parameters(void) {
    const char *url = env("BACKDROP_TEST_URL");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_client_builder *builder = NULL;
    const backdrop_client *built = NULL;
    backdrop_request *request = request_with("a beach", 1);
    backdrop_task *task = NULL;
    backdrop_bytes *bytes = NULL;
    backdrop_error *err = NULL;
    backdrop_png_info info;
    int32_t state = 5;
    uint8_t png[128];
    size_t len = png_header(png, 300, 300, 6);
    long long creates_before;
    const backdrop_result null = BACKDROP_ERR_NULL_PARAMETER;

    CHECK_CODE(backdrop_task_from_id("some-task", &task), BACKDROP_OK);

    /* Infallible functions: neutral values. */
    CHECK(backdrop_result_message(BACKDROP_OK, NULL, 100) == strlen("success") + 1);
    CHECK(backdrop_error_code(NULL) == null);
    CHECK(strcmp(backdrop_error_message(NULL), "") == 0);
    CHECK(backdrop_error_http_status(NULL) == 0);
    CHECK(!backdrop_error_task_state(NULL, &state) && state == 5);
    CHECK(backdrop_error_task_id(NULL) == NULL);
    CHECK(!backdrop_error_is_transient(NULL));
    CHECK(!backdrop_error_may_have_created_task(NULL));
    CHECK(backdrop_error_recovery(NULL) == BACKDROP_RECOVERY_NONE);
    CHECK(backdrop_bytes_data(NULL) == NULL && backdrop_bytes_len(NULL) == 0);
    CHECK(strcmp(backdrop_bytes_extension(NULL), "") == 0);
    CHECK(strcmp(backdrop_bytes_mime_type(NULL), "") == 0);
    CHECK(backdrop_task_id(NULL) == NULL && backdrop_task_state(NULL) == 0);
    CHECK(backdrop_task_progress(NULL) == -1.0 && backdrop_task_result_count(NULL) == 0);
    CHECK(backdrop_client_requests_sent(NULL) == 0);

    /* Every _free accepts NULL. */
    backdrop_error_free(NULL);
    backdrop_bytes_free(NULL);
    backdrop_task_free(NULL);
    backdrop_request_free(NULL);
    backdrop_client_builder_free(NULL);
    backdrop_client_free(NULL);

    /* Client builder. */
    CHECK_CODE(backdrop_client_builder_new(NULL, &builder), null);
    CHECK_CODE(backdrop_client_builder_new(key(), NULL), null);
    CHECK_CODE(backdrop_client_builder_new(key(), &builder), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_base_url(NULL, url), null);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, NULL), null);
    CHECK_CODE(backdrop_client_builder_set_qps(NULL, 2), null);
    CHECK_CODE(backdrop_client_builder_set_rate_limit(NULL, 2, 1000), null);
    CHECK_CODE(backdrop_client_builder_set_connect_timeout_ms(NULL, 1), null);
    CHECK_CODE(backdrop_client_builder_set_request_timeout_ms(NULL, 1), null);
    CHECK_CODE(backdrop_client_builder_set_download_timeout_ms(NULL, 1), null);
    CHECK_CODE(backdrop_client_builder_set_retry(NULL, 1, 1, 1), null);
    CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(NULL, 1), null);
    CHECK_CODE(backdrop_client_builder_set_poll_policy(NULL, BACKDROP_POLL_ADAPTIVE), null);
    CHECK_ERR(backdrop_client_builder_build(NULL, &built, &err), null, err);
    /* A NULL output does not use up the builder. */
    CHECK_ERR(backdrop_client_builder_build(builder, NULL, &err), null, err);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, url), BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &built, NULL), BACKDROP_OK, err);
    CHECK(built != NULL);
    backdrop_client_free(built);
    backdrop_client_builder_free(builder);

    /* Request. */
    CHECK_CODE(backdrop_request_new(NULL), null);
    CHECK_CODE(backdrop_request_set_image_path(NULL, "a.png"), null);
    CHECK_CODE(backdrop_request_set_image_path(request, NULL), null);
    CHECK_CODE(backdrop_request_set_image_bytes(NULL, png, len, NULL), null);
    CHECK_CODE(backdrop_request_set_image_bytes(request, NULL, len, "a.png"), null);
    CHECK_CODE(backdrop_request_set_image_url(NULL, "https://example.com/a.png"), null);
    CHECK_CODE(backdrop_request_set_image_url(request, NULL), null);
    CHECK_CODE(backdrop_request_set_prompt(NULL, "a beach"), null);
    CHECK_CODE(backdrop_request_set_prompt(request, NULL), null);
    CHECK_CODE(backdrop_request_set_negative_prompt(NULL, "people"), null);
    CHECK_CODE(backdrop_request_set_negative_prompt(request, NULL), null);
    CHECK_CODE(backdrop_request_set_scene_type(NULL, 105), null);
    CHECK_CODE(backdrop_request_set_batch_size(NULL, 1), null);
    CHECK_ERR(backdrop_request_validate(NULL, &err), null, err);
    /* The failed setters changed nothing: the request is still the valid one. */
    CHECK_ERR(backdrop_request_validate(request, NULL), BACKDROP_OK, err);

    /* Validation. */
    CHECK_ERR(backdrop_validate_png_file(NULL, &info, &err), null, err);
    CHECK_ERR(backdrop_validate_png_bytes(NULL, len, &info, &err), null, err);
    CHECK_ERR(backdrop_validate_png_bytes_with(png, len, BACKDROP_VALIDATE_HEADER_ONLY, NULL, NULL),
              BACKDROP_OK, err);

    /* Task. */
    CHECK_CODE(backdrop_task_from_id(NULL, &task), null);
    CHECK_CODE(backdrop_task_from_id("x", NULL), null);

    /* Client: nothing is sent when any pointer is NULL. */
    creates_before = counter(url, "create_requests");
    CHECK_ERR(backdrop_client_create_task(NULL, request, &task, &err), null, err);
    CHECK_ERR(backdrop_client_create_task(client, NULL, &task, &err), null, err);
    CHECK_ERR(backdrop_client_create_task(client, request, NULL, &err), null, err);
    CHECK(counter(url, "create_requests") == creates_before);
    CHECK_ERR(backdrop_client_poll(NULL, task, &err), null, err);
    CHECK_ERR(backdrop_client_poll(client, NULL, &err), null, err);
    CHECK_ERR(backdrop_client_wait(NULL, task, 100, log_progress, NULL, &err), null, err);
    CHECK_ERR(backdrop_client_wait(client, NULL, 100, log_progress, NULL, &err), null, err);
    /* The pointer checks come before the state checks (the task has not succeeded). */
    CHECK_ERR(backdrop_client_download(NULL, task, 1, &bytes, &err), null, err);
    CHECK_ERR(backdrop_client_download(client, NULL, 1, &bytes, &err), null, err);
    CHECK_ERR(backdrop_client_download(client, task, 1, NULL, &err), null, err);
    CHECK_ERR(backdrop_client_download_to_file(NULL, task, 1, "x.jpg", &err), null, err);
    CHECK_ERR(backdrop_client_download_to_file(client, NULL, 1, "x.jpg", &err), null, err);
    CHECK_ERR(backdrop_client_download_to_file(client, task, 1, NULL, &err), null, err);
    /* error_out is optional everywhere. */
    CHECK_CODE(backdrop_client_poll(client, NULL, NULL), null);
    CHECK(bytes == NULL);

    /* The error of a NULL parameter names it. */
    CHECK_CODE(backdrop_client_poll(client, NULL, &err), null);
    CHECK(strstr(backdrop_error_message(err), "task") != NULL);
    backdrop_error_free(err);

    backdrop_task_free(task);
    backdrop_request_free(request);
    backdrop_client_free(client);
}

static void test_cancellation_and_nesting(void) {
    const backdrop_client *client = client_for("BACKDROP_TEST_URL_NEVER");
    backdrop_request *request = request_with("a beach", 1);
    backdrop_task *task = create(client, request);
    backdrop_error *err = NULL;
    struct progress_log log;

    memset(&log, 0, sizeof log);
    log.cancel_after = 2;
    CHECK_CODE(backdrop_client_wait(client, task, 30000, log_progress, &log, &err),
               BACKDROP_ERR_CANCELLED);
    CHECK(log.calls == 2);
    CHECK(backdrop_error_task_id(err) != NULL &&
          strcmp(backdrop_error_task_id(err), backdrop_task_id(task)) == 0);
    backdrop_error_free(err);
    err = NULL;

    /* A blocking call from inside the callback is refused with BACKDROP_ERR_NESTED_CALL. */
    memset(&log, 0, sizeof log);
    log.cancel_after = 1;
    log.client = client;
    CHECK_ERR(backdrop_client_wait(client, task, 30000, log_progress, &log, &err),
              BACKDROP_ERR_CANCELLED, err);
    CHECK_CODE(log.nested_code, BACKDROP_ERR_NESTED_CALL);

    backdrop_task_free(task);
    backdrop_request_free(request);
    backdrop_client_free(client);
}

struct thread_job {
    const backdrop_client *client;
    const backdrop_request *request;
    backdrop_result result;
    size_t image_bytes;
};

static void *run_job(void *arg) {
    struct thread_job *job = arg;
    backdrop_task *task = NULL;
    backdrop_bytes *bytes = NULL;
    job->result = backdrop_client_create_task(job->client, job->request, &task, NULL);
    if (job->result == BACKDROP_OK) {
        job->result = backdrop_client_wait(job->client, task, 60000, NULL, NULL, NULL);
    }
    if (job->result == BACKDROP_OK) {
        job->result = backdrop_client_download(job->client, task, 1, &bytes, NULL);
        job->image_bytes = backdrop_bytes_len(bytes);
    }
    backdrop_bytes_free(bytes);
    backdrop_task_free(task);
    return NULL;
}

static void test_threads_share_one_client(void) {
    enum { THREADS = 8 };
    const char *url = env("BACKDROP_TEST_URL");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_request *request = request_with("a wooden table", 1);
    pthread_t threads[THREADS];
    struct thread_job jobs[THREADS];
    long long created_before = counter(url, "tasks_created");
    long long limited_before = counter(url, "responses_429");
    int i;

    CHECK(created_before >= 0 && limited_before >= 0);
    for (i = 0; i < THREADS; i++) {
        jobs[i].client = client;
        jobs[i].request = request;
        jobs[i].result = BACKDROP_ERR_OTHER;
        jobs[i].image_bytes = 0;
        CHECK(pthread_create(&threads[i], NULL, run_job, &jobs[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK_CODE(jobs[i].result, BACKDROP_OK);
        CHECK(jobs[i].image_bytes > 100);
    }
    CHECK(counter(url, "tasks_created") == created_before + THREADS);
    /* One client, one rate limit: the emulator never had to refuse a request. */
    CHECK(counter(url, "responses_429") == limited_before);
    CHECK(counter(url, "max_requests_in_window") <= EMULATOR_QPS);
    backdrop_request_free(request);
    backdrop_client_free(client);
}

static void test_resume_from_task_id(void) {
    char saved_id[128];
    backdrop_request *request = request_with("a stone wall", 1);
    backdrop_task *task;
    backdrop_task *resumed = NULL;
    backdrop_bytes *bytes = NULL;
    backdrop_error *err = NULL;
    const backdrop_client *first = client_for("BACKDROP_TEST_URL");
    const backdrop_client *second;

    /* Create, keep only the id string, forget everything else ("restart"). */
    task = create(first, request);
    snprintf(saved_id, sizeof saved_id, "%s", task != NULL ? backdrop_task_id(task) : "");
    backdrop_task_free(task);
    backdrop_client_free(first);
    backdrop_request_free(request);

    second = client_for("BACKDROP_TEST_URL");
    CHECK_CODE(backdrop_task_from_id(saved_id, &resumed), BACKDROP_OK);
    CHECK_ERR(backdrop_client_wait(second, resumed, 30000, NULL, NULL, &err), BACKDROP_OK, err);
    CHECK(backdrop_task_state(resumed) == 1 && backdrop_task_result_count(resumed) == 1);
    CHECK_ERR(backdrop_client_download(second, resumed, 1, &bytes, &err), BACKDROP_OK, err);
    CHECK(is_jpeg(backdrop_bytes_data(bytes), backdrop_bytes_len(bytes)));
    backdrop_bytes_free(bytes);
    backdrop_task_free(resumed);
    backdrop_client_free(second);
}

/* ------------------------------------------------------------------------------------------ */
/* Misuse: wrong buffer lengths, odd strings, calls after an error                            */

/* The service's file size limit (20 MiB). */
#define MAX_IMAGE_BYTES ((size_t)20 * 1024 * 1024)

/* True when `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
static int utf8_valid(const char *text) {
    const unsigned char *p = (const unsigned char *)text;
    while (*p != 0) {
        unsigned char c = *p;
        uint32_t code;
        int more, i;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            more = 1, code = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2, code = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3, code = c & 0x07;
        } else {
            return 0;
        }
        for (i = 1; i <= more; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            code = (code << 6) | (p[i] & 0x3F);
        }
        if ((more == 2 && code < 0x800) || (more == 3 && code < 0x10000) || code > 0x10FFFF ||
            (code >= 0xD800 && code <= 0xDFFF)) {
            return 0;
        }
        p += more + 1;
    }
    return 1;
}

/* A heap copy of exactly `len` bytes (at least one allocated), so that ASan and valgrind see
 * any read past `len`. */
static uint8_t *exact_copy(const uint8_t *data, size_t len) {
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy != NULL && len > 0) memcpy(copy, data, len);
    return copy;
}

/* A marker address for output parameters: a call that must write nothing leaves it there. */
static char untouched_marker;
#define UNTOUCHED ((void *)&untouched_marker)

static void test_buffer_lengths(void) {
    enum { BUF = 1024, SENTINEL = 0x5A };
    const char *url = env("BACKDROP_TEST_URL");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    char buf[BUF];
    char full[BUF];
    uint8_t png[128];
    size_t png_len = png_header(png, 512, 512, 6);
    backdrop_request *request = request_with("a beach", 1);
    backdrop_task *task = UNTOUCHED;
    backdrop_error *err = NULL;
    backdrop_png_info info;
    backdrop_png_info before;
    uint8_t *heap;
    uint8_t *big;
    long long creates_before = counter(url, "create_requests");
    static const size_t huge[] = {MAX_IMAGE_BYTES + 1, (size_t)1 << 31, (size_t)1 << 40,
                                  SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX};
    size_t i, len;
    uint32_t code; /* any value: the message functions take every uint32_t */
    int known = 0;

    /* backdrop_result_message, for every code this version knows plus unknown ones: a NULL
     * buffer or a length of 0 writes nothing and reports the size needed; every shorter length
     * writes a NUL-terminated, UTF-8 prefix of the message and not one byte more. */
    for (code = 0; code <= 8000; code++) {
        size_t needed;
        int is_known = strcmp(backdrop_result_name(code), "BACKDROP_UNKNOWN") != 0;
        if (!is_known && code != 1 && code != 7099 && code != 7999 && code != 8000) continue;
        known += is_known;
        needed = backdrop_result_message(code, NULL, 0);
        CHECK(needed > 1 && needed < BUF);
        if (needed <= 1 || needed >= BUF) continue;
        CHECK(backdrop_result_message(code, NULL, SIZE_MAX) == needed);
        CHECK(backdrop_result_message(code, full, sizeof full) == needed);
        CHECK(strlen(full) + 1 == needed && utf8_valid(full));
        memset(buf, SENTINEL, sizeof buf);
        CHECK(backdrop_result_message(code, buf, 0) == needed);
        CHECK((unsigned char)buf[0] == SENTINEL);
        for (len = 1; len <= needed + 2; len++) {
            size_t written, j;
            memset(buf, SENTINEL, sizeof buf);
            CHECK(backdrop_result_message(code, buf, len) == needed);
            written = strnlen(buf, len);
            CHECK(written < len); /* NUL-terminated within len */
            if (written >= len) break;
            CHECK(written == (len >= needed ? needed - 1 : len - 1)); /* ASCII messages */
            CHECK(memcmp(buf, full, written) == 0 && utf8_valid(buf));
            for (j = written + 1; j < sizeof buf; j++) {
                if ((unsigned char)buf[j] != SENTINEL) {
                    fprintf(stderr, "    code %u, len %zu: byte %zu written\n", (unsigned)code,
                            len, j);
                    check_failures++;
                    break;
                }
            }
        }
    }
    CHECK(known > 40);
    /* Whatever `len` claims, no more than the message is written. */
    memset(buf, SENTINEL, sizeof buf);
    len = backdrop_result_message(BACKDROP_ERR_TIMEOUT, buf, SIZE_MAX);
    CHECK(len == strnlen(buf, sizeof buf) + 1 && len < sizeof buf);
    if (len < sizeof buf) CHECK((unsigned char)buf[len] == SENTINEL);

    /* backdrop_validate_png_bytes. A NULL pointer is NULL whatever the length. */
    memset(&info, 0xAB, sizeof info);
    before = info;
    CHECK_ERR(backdrop_validate_png_bytes(NULL, 0, &info, &err), BACKDROP_ERR_NULL_PARAMETER,
              err);
    CHECK_ERR(backdrop_validate_png_bytes(NULL, SIZE_MAX, &info, &err),
              BACKDROP_ERR_NULL_PARAMETER, err);
    /* Length 0 with a valid pointer: an empty file. */
    CHECK_ERR(backdrop_validate_png_bytes(png, 0, &info, &err), BACKDROP_ERR_INVALID_EMPTY_FILE,
              err);
    /* Every cut of a header, from a buffer of exactly that length, never read past (ASan,
     * valgrind): refused while the signature and IHDR (33 bytes) are incomplete, accepted after
     * by the header check, always refused by the full check (cut short). */
    for (len = 1; len < png_len; len++) {
        backdrop_png_info cut;
        heap = exact_copy(png, len);
        if (len < 33) {
            code = backdrop_validate_png_bytes(heap, len, &info, &err);
            CHECK(code == BACKDROP_ERR_INVALID_NOT_PNG ||
                  code == BACKDROP_ERR_INVALID_CORRUPT_PNG);
            CHECK(err != NULL && backdrop_error_code(err) == code);
            backdrop_error_free(err);
            err = NULL;
        } else {
            CHECK_ERR(backdrop_validate_png_bytes_with(heap, len, BACKDROP_VALIDATE_HEADER_ONLY,
                                                       &cut, &err),
                      BACKDROP_OK, err);
            CHECK(cut.file_size == len);
            CHECK_ERR(backdrop_validate_png_bytes(heap, len, &info, &err),
                      BACKDROP_ERR_INVALID_DAMAGED_PNG, err);
        }
        free(heap);
    }
    CHECK(memcmp(&info, &before, sizeof info) == 0); /* outputs only on success */
    heap = exact_copy(png, png_len);
    CHECK_ERR(backdrop_validate_png_bytes_with(heap, png_len, BACKDROP_VALIDATE_HEADER_ONLY, &info,
                                               &err),
              BACKDROP_OK, err);
    CHECK(info.width == 512 && info.file_size == png_len);
    free(heap);
    /* Every cut of a whole PNG (the fixture) is refused by the full check, never read past. */
    {
        size_t whole_len = 0;
        uint8_t *whole = read_file(env("BACKDROP_TEST_FIXTURE"), &whole_len);
        CHECK(whole != NULL);
        for (len = 33; whole != NULL && len < whole_len; len += 97) {
            heap = exact_copy(whole, len);
            code = backdrop_validate_png_bytes(heap, len, NULL, &err);
            CHECK(code == BACKDROP_ERR_INVALID_DAMAGED_PNG);
            backdrop_error_free(err);
            err = NULL;
            free(heap);
        }
        if (whole != NULL) {
            heap = exact_copy(whole, whole_len);
            CHECK_ERR(backdrop_validate_png_bytes(heap, whole_len, &info, &err), BACKDROP_OK, err);
            CHECK(info.pixels_checked && info.total_pixels == 480u * 640u);
            free(heap);
        }
        free(whole);
    }
    /* A length over 20 MiB is refused from the length alone: the small buffer behind it is never
     * read (ASan would report it). */
    memset(&info, 0xAB, sizeof info);
    heap = exact_copy(png, png_len);
    for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        CHECK_ERR(backdrop_validate_png_bytes(heap, huge[i], &info, &err),
                  BACKDROP_ERR_INVALID_FILE_TOO_LARGE, err);
    }
    CHECK(memcmp(&info, &before, sizeof info) == 0);

    /* backdrop_request_set_image_bytes: the same rules, and a refused call changes nothing. */
    CHECK_CODE(backdrop_request_set_image_bytes(request, NULL, 0, "a.png"),
               BACKDROP_ERR_NULL_PARAMETER);
    CHECK_CODE(backdrop_request_set_image_bytes(request, NULL, png_len, "a.png"),
               BACKDROP_ERR_NULL_PARAMETER);
    CHECK_CODE(backdrop_request_set_image_bytes(request, NULL, SIZE_MAX, "a.png"),
               BACKDROP_ERR_NULL_PARAMETER);
    for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        /* Would allocate `len` bytes and read past the buffer: refused before either. */
        CHECK_CODE(backdrop_request_set_image_bytes(request, heap, huge[i], "a.png"),
                   BACKDROP_ERR_INVALID_FILE_TOO_LARGE);
    }
    /* The request still has only its image path: valid. */
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    /* Length 0 is accepted by the setter (copied: nothing) and refused by validation and create,
     * before anything is sent. */
    backdrop_request_free(request);
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_bytes(request, heap, 0, NULL), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_EMPTY_FILE, err);
    CHECK_ERR(backdrop_client_create_task(client, request, &task, &err),
              BACKDROP_ERR_INVALID_EMPTY_FILE, err);
    CHECK(task == UNTOUCHED);
    /* Exactly the bytes given are copied (ASan sees any over-read), and only during the call:
     * the copy is judged after the caller's buffer is wiped (headers only: a damaged PNG, not an
     * empty one). */
    CHECK_CODE(backdrop_request_set_image_bytes(request, heap, png_len, NULL), BACKDROP_OK);
    memset(heap, 0, png_len);
    free(heap);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_DAMAGED_PNG, err);

    /* The 20 MiB boundary with real buffers: at the limit accepted, one byte over refused. */
    big = calloc(MAX_IMAGE_BYTES + 1, 1);
    CHECK(big != NULL);
    if (big != NULL) {
        png_header(big, 512, 512, 6);
        CHECK_ERR(backdrop_validate_png_bytes_with(big, MAX_IMAGE_BYTES,
                                                   BACKDROP_VALIDATE_HEADER_ONLY, &info, &err),
                  BACKDROP_OK, err);
        CHECK(info.file_size == MAX_IMAGE_BYTES);
        CHECK_ERR(backdrop_validate_png_bytes(big, MAX_IMAGE_BYTES + 1, NULL, &err),
                  BACKDROP_ERR_INVALID_FILE_TOO_LARGE, err);
        CHECK_CODE(backdrop_request_set_image_bytes(request, big, MAX_IMAGE_BYTES + 1, NULL),
                   BACKDROP_ERR_INVALID_FILE_TOO_LARGE);
        CHECK_CODE(backdrop_request_set_image_bytes(request, big, MAX_IMAGE_BYTES, NULL),
                   BACKDROP_OK);
        free(big);
        /* At the limit the size passes; the whole-file check then finds headers and zeros. */
        CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_DAMAGED_PNG, err);
    }

    /* None of it reached the service. */
    CHECK(counter(url, "create_requests") == creates_before);
    backdrop_request_free(request);
    backdrop_client_free(client);
}

static void test_strings(void) {
    /* Ill-formed UTF-8: a stray byte, a cut sequence, an overlong '/', a surrogate, a code
     * point over U+10FFFF. */
    static const char *const bad[] = {"\xff", "abc\xc3", "\xe2\x82", "\xc0\xaf",
                                      "\xed\xa0\x80", "\xf4\x90\x80\x80", "ok \x80 ok"};
    const size_t n_bad = sizeof bad / sizeof bad[0];
    const char *out = env("BACKDROP_TEST_OUT");
    backdrop_client_builder *builder = UNTOUCHED;
    const backdrop_client *client = UNTOUCHED;
    backdrop_request *request = NULL;
    backdrop_task *task = UNTOUCHED;
    backdrop_error *err = NULL;
    uint8_t png[128];
    size_t png_len = png_header(png, 512, 512, 6);
    char path[600];
    char *prompt;
    uint8_t *file;
    size_t len, i;
    FILE *handle;

    for (i = 0; i < n_bad; i++) {
        /* Every UTF-8 string parameter refuses it and changes nothing. */
        CHECK_CODE(backdrop_client_builder_new(bad[i], &builder), BACKDROP_ERR_INVALID_UTF8);
        CHECK(builder == UNTOUCHED);
        CHECK_CODE(backdrop_task_from_id(bad[i], &task), BACKDROP_ERR_INVALID_UTF8);
        CHECK(task == UNTOUCHED);
        request = request_with("a beach", 1);
        CHECK_CODE(backdrop_request_set_prompt(request, bad[i]), BACKDROP_ERR_INVALID_UTF8);
        CHECK_CODE(backdrop_request_set_negative_prompt(request, bad[i]),
                   BACKDROP_ERR_INVALID_UTF8);
        CHECK_CODE(backdrop_request_set_image_url(request, bad[i]), BACKDROP_ERR_INVALID_UTF8);
        CHECK_CODE(backdrop_request_set_image_bytes(request, png, png_len, bad[i]),
                   BACKDROP_ERR_INVALID_UTF8);
        CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
        backdrop_request_free(request);
    }
    CHECK_CODE(backdrop_client_builder_new(key(), &builder), BACKDROP_OK);
    for (i = 0; i < n_bad; i++) {
        CHECK_CODE(backdrop_client_builder_set_base_url(builder, bad[i]),
                   BACKDROP_ERR_INVALID_UTF8);
    }
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, env("BACKDROP_TEST_URL")),
               BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &client, &err), BACKDROP_OK, err);
    backdrop_client_builder_free(builder);
    builder = NULL;


    /* Interior NUL: C strings end at the first NUL, so the library sees only what precedes it. */
    CHECK_CODE(backdrop_request_new(&request), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_path(request, env("BACKDROP_TEST_FIXTURE")),
               BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_prompt(request, "\0a beach"), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_EMPTY_PROMPT, err);
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach\0\xff"), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    CHECK_CODE(backdrop_request_set_image_bytes(request, png, png_len, "a.png\0\xff"),
               BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_url(request, "https://example.com/a.png\0junk"),
               BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_IMAGE_SOURCE, err);
    backdrop_request_free(request);
    CHECK_CODE(backdrop_task_from_id("\0abc", &task), BACKDROP_ERR_INVALID_ARGUMENT);
    CHECK(task == UNTOUCHED);
    CHECK_CODE(backdrop_client_builder_new("\0secret-after-nul", &builder), BACKDROP_OK);
    {
        const backdrop_client *none = UNTOUCHED;
        CHECK_ERR(backdrop_client_builder_build(builder, &none, &err), BACKDROP_ERR_CONFIG, err);
        CHECK(none == UNTOUCHED);
    }
    backdrop_client_builder_free(builder);
    builder = NULL;
    CHECK_CODE(backdrop_task_from_id("some-task", &task), BACKDROP_OK);
    /* An empty output path is refused before anything is fetched (the task never succeeded). */
    CHECK_ERR(backdrop_client_download_to_file(client, task, 1, "\0x.jpg", &err),
              BACKDROP_ERR_INVALID_ARGUMENT, err);
    backdrop_task_free(task);
    task = NULL;

    /* Long strings are copied whole; prompt length counts characters, not bytes. */
    prompt = malloc(1 << 20);
    CHECK(prompt != NULL);
    if (prompt != NULL) {
        request = request_with("a beach", 1);
        memset(prompt, 'p', (1 << 20) - 1);
        prompt[(1 << 20) - 1] = '\0';
        CHECK_CODE(backdrop_request_set_prompt(request, prompt), BACKDROP_OK);
        CHECK_CODE(backdrop_request_set_negative_prompt(request, prompt), BACKDROP_OK);
        CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_PROMPT_TOO_LONG,
                  err);
        CHECK_CODE(backdrop_request_set_negative_prompt(request, "people"), BACKDROP_OK);
        for (i = 0; i < 1024; i++) memcpy(prompt + 2 * i, "\xc3\xa9", 2); /* 1024 x U+00E9 */
        prompt[2048] = '\0';
        CHECK_CODE(backdrop_request_set_prompt(request, prompt), BACKDROP_OK);
        CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
        memcpy(prompt + 2048, "\xc3\xa9", 3); /* 1025 characters */
        CHECK_CODE(backdrop_request_set_prompt(request, prompt), BACKDROP_OK);
        CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_PROMPT_TOO_LONG,
                  err);
        backdrop_request_free(request);
        free(prompt);
    }

    /* Paths may be any bytes: a file whose name is not UTF-8 is found, and a missing one is an
     * I/O error whose message is still UTF-8. */
    snprintf(path, sizeof path, "%s/not-utf8-\xff\xfe.png", out);
    file = read_file(env("BACKDROP_TEST_FIXTURE"), &len);
    CHECK(file != NULL);
    handle = fopen(path, "wb");
    CHECK(handle != NULL);
    if (handle != NULL && file != NULL) {
        CHECK(fwrite(file, 1, len, handle) == len);
    }
    if (handle != NULL) fclose(handle);
    free(file);
    CHECK_ERR(backdrop_validate_png_file(path, NULL, &err), BACKDROP_OK, err);
    request = request_with("a beach", 1);
    CHECK_CODE(backdrop_request_set_image_path(request, path), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    task = create(client, request);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
    snprintf(path, sizeof path, "%s/result-\xff.jpg", out);
    CHECK_ERR(backdrop_client_download_to_file(client, task, 1, path, &err), BACKDROP_OK, err);
    file = read_file(path, &len);
    CHECK(file != NULL && is_jpeg(file, len));
    free(file);
    backdrop_task_free(task);
    snprintf(path, sizeof path, "%s/missing-\xc3\x28\xff.png", out);
    CHECK_CODE(backdrop_request_set_image_path(request, path), BACKDROP_OK);
    CHECK_CODE(backdrop_request_validate(request, &err), BACKDROP_ERR_IO);
    CHECK(utf8_valid(backdrop_error_message(err)));
    backdrop_error_free(err);
    err = NULL;
    CHECK_CODE(backdrop_validate_png_file(path, NULL, &err), BACKDROP_ERR_IO);
    CHECK(utf8_valid(backdrop_error_message(err)));
    backdrop_error_free(err);
    err = NULL;
    backdrop_request_free(request);
    backdrop_client_free(client);
}

struct cancel_after_first {
    int calls;
};

static uint32_t cancel_first(void *userdata, const backdrop_task *view) {
    struct cancel_after_first *state = userdata;
    (void)view;
    state->calls++;
    return BACKDROP_PROGRESS_CANCEL;
}

/* SIGPIPE's default action ends the process, and a write to a connection the server closed
 * raises it. The client's worker threads, where connections are written, block it (read here
 * from Linux's /proc); the caller's own threads are left alone. The fault emulators' dropped
 * connections are the case in point. */
static void test_workers_block_sigpipe(void) {
#ifdef __linux__
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_task *task = NULL;
    backdrop_error *err = NULL;
    DIR *threads = opendir("/proc/self/task");
    struct dirent *entry;
    int workers = 0, blocked = 0;
    sigset_t mine;
    /* One call, so that every kind of worker has run. */
    CHECK_CODE(backdrop_task_from_id("no-such-task", &task), BACKDROP_OK);
    CHECK_CODE(backdrop_client_poll(client, task, &err), BACKDROP_ERR_NOT_FOUND);
    backdrop_error_free(err);
    CHECK(threads != NULL);
    while (threads != NULL && (entry = readdir(threads)) != NULL) {
        char path[512], line[256], name[64] = "";
        unsigned long long signals_blocked = 0;
        FILE *status;
        if (entry->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/status", entry->d_name);
        status = fopen(path, "r");
        if (status == NULL) {
            continue;
        }
        while (fgets(line, sizeof line, status) != NULL) {
            if (strncmp(line, "Name:", 5) == 0) {
                sscanf(line + 5, "%63s", name);
            } else if (strncmp(line, "SigBlk:", 7) == 0) {
                sscanf(line + 7, "%llx", &signals_blocked);
            }
        }
        fclose(status);
        if (strcmp(name, "backdrop-worker") == 0) {
            workers++;
            blocked += (signals_blocked >> (SIGPIPE - 1)) & 1;
        }
    }
    if (threads != NULL) {
        closedir(threads);
    }
    CHECK(workers > 0);
    CHECK(blocked == workers);
    CHECK(pthread_sigmask(SIG_BLOCK, NULL, &mine) == 0);
    CHECK(!sigismember(&mine, SIGPIPE));
    backdrop_task_free(task);
    backdrop_client_free(client);
#endif
}

static void test_calls_after_errors(void) {
    const char *out = env("BACKDROP_TEST_OUT");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    backdrop_client_builder *builder = NULL;
    const backdrop_client *built = UNTOUCHED;
    backdrop_request *request = NULL;
    backdrop_task *task = NULL;
    backdrop_task *again = UNTOUCHED;
    backdrop_bytes *bytes = UNTOUCHED;
    backdrop_error *err = NULL;
    backdrop_error *kept = NULL;
    struct cancel_after_first cancel;
    struct stat st;
    char path[600];
    char id[128];
    int32_t state = 0;
    int i;

    /* A builder after failed builds: each fails alike and leaves it usable; after the good build
     * every call is BACKDROP_ERR_ALREADY_USED and the builder is still freed. */
    CHECK_CODE(backdrop_client_builder_new(key(), &builder), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, "not a url"), BACKDROP_OK);
    for (i = 0; i < 3; i++) {
        CHECK_ERR(backdrop_client_builder_build(builder, &built, &err), BACKDROP_ERR_CONFIG, err);
        CHECK(built == UNTOUCHED);
    }
    CHECK_CODE(backdrop_client_builder_set_base_url(builder, env("BACKDROP_TEST_URL")),
               BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_qps(builder, CLIENT_QPS), BACKDROP_OK);
    CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(builder, 100), BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &built, &err), BACKDROP_OK, err);
    CHECK(built != UNTOUCHED && built != NULL);
    {
        const backdrop_client *second = UNTOUCHED;
        const backdrop_result used = BACKDROP_ERR_ALREADY_USED;
        CHECK_ERR(backdrop_client_builder_build(builder, &second, &err), used, err);
        CHECK(second == UNTOUCHED);
        CHECK_CODE(backdrop_client_builder_set_base_url(builder, "http://127.0.0.1:1"), used);
        CHECK_CODE(backdrop_client_builder_set_qps(builder, 1), used);
        CHECK_CODE(backdrop_client_builder_set_rate_limit(builder, 1, 1000), used);
        CHECK_CODE(backdrop_client_builder_set_connect_timeout_ms(builder, 1), used);
        CHECK_CODE(backdrop_client_builder_set_request_timeout_ms(builder, 1), used);
        CHECK_CODE(backdrop_client_builder_set_download_timeout_ms(builder, 1), used);
        CHECK_CODE(backdrop_client_builder_set_retry(builder, 1, 1, 1), used);
        CHECK_CODE(backdrop_client_builder_set_poll_interval_ms(builder, 1), used);
        CHECK_CODE(backdrop_client_builder_set_poll_policy(builder, BACKDROP_POLL_DOCUMENTED),
                   used);
        /* Argument checks still come first. */
        CHECK_CODE(backdrop_client_builder_set_base_url(builder, NULL),
                   BACKDROP_ERR_NULL_PARAMETER);
    }
    backdrop_client_builder_free(builder);
    builder = NULL;
    /* A builder whose key can never build: it only needs freeing. */
    CHECK_CODE(backdrop_client_builder_new("", &builder), BACKDROP_OK);
    CHECK_ERR(backdrop_client_builder_build(builder, &built, &err), BACKDROP_ERR_CONFIG, err);
    backdrop_client_builder_free(builder);

    /* A request after a validation failure, and a client after failed creates: fixing the field
     * is enough, and the client is unharmed. */
    request = request_with("a beach", 1);
    CHECK_CODE(backdrop_request_set_batch_size(request, 3), BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_ERR_INVALID_BATCH_SIZE, err);
    CHECK_ERR(backdrop_client_create_task(built, request, &again, &err),
              BACKDROP_ERR_INVALID_BATCH_SIZE, err);
    snprintf(path, sizeof path, "%s/no-such-image.png", out);
    CHECK_CODE(backdrop_request_set_batch_size(request, 1), BACKDROP_OK);
    CHECK_CODE(backdrop_request_set_image_path(request, path), BACKDROP_OK);
    CHECK_ERR(backdrop_client_create_task(built, request, &again, &err), BACKDROP_ERR_IO, err);
    CHECK(again == UNTOUCHED);
    CHECK_CODE(backdrop_request_set_image_path(request, env("BACKDROP_TEST_FIXTURE")),
               BACKDROP_OK);
    CHECK_ERR(backdrop_request_validate(request, &err), BACKDROP_OK, err);
    task = create(built, request);
    CHECK_ERR(backdrop_client_wait(built, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
    /* Download after failed downloads: a number out of range, twice, then a good one. */
    CHECK_ERR(backdrop_client_download(built, task, 2, &bytes, &err),
              BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE, err);
    CHECK_ERR(backdrop_client_download(built, task, SIZE_MAX, &bytes, &err),
              BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE, err);
    CHECK(bytes == UNTOUCHED);
    CHECK_ERR(backdrop_client_download(built, task, 1, &bytes, &err), BACKDROP_OK, err);
    /* Bytes (and errors) outlive the client and the task they came from. */
    CHECK_CODE(backdrop_client_download(built, task, 8, &(backdrop_bytes *){NULL}, &kept),
               BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE);
    backdrop_task_free(task);
    task = NULL;
    backdrop_client_free(built);
    built = NULL;
    CHECK(bytes != UNTOUCHED && is_jpeg(backdrop_bytes_data(bytes), backdrop_bytes_len(bytes)));
    backdrop_bytes_free(bytes);
    bytes = UNTOUCHED;
    CHECK(backdrop_error_code(kept) == BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE);
    CHECK(strlen(backdrop_error_message(kept)) > 0 && backdrop_error_task_id(kept) != NULL);
    backdrop_error_free(kept);
    kept = NULL;

    /* A task after a failed wait: waiting again fails the same way, a poll works and sees the
     * failed state, downloads are refused and write nothing. */
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach emulator:fail=-7"), BACKDROP_OK);
    task = create(client, request);
    snprintf(id, sizeof id, "%s", task != NULL ? backdrop_task_id(task) : "");
    for (i = 0; i < 2; i++) {
        CHECK_CODE(backdrop_client_wait(client, task, 30000, NULL, NULL, &err),
                   BACKDROP_ERR_TASK_FAILED);
        CHECK(backdrop_error_task_state(err, &state) && state == -7);
        backdrop_error_free(err);
        err = NULL;
    }
    CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_OK, err);
    CHECK(backdrop_task_state(task) == -7 && backdrop_task_result_count(task) == 0);
    CHECK(strcmp(backdrop_task_id(task), id) == 0);
    CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err),
              BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
    CHECK(bytes == UNTOUCHED);
    snprintf(path, sizeof path, "%s/after-failed-wait.jpg", out);
    CHECK_ERR(backdrop_client_download_to_file(client, task, 1, path, &err),
              BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
    CHECK(stat(path, &st) != 0);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, NULL, NULL, &err),
              BACKDROP_ERR_TASK_FAILED, err);
    backdrop_task_free(task);
    task = NULL;

    /* A task after a cancelled wait: it went on at the service; waiting again finishes it. */
    CHECK_CODE(backdrop_request_set_prompt(request, "a beach"), BACKDROP_OK);
    task = create(client, request);
    memset(&cancel, 0, sizeof cancel);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, cancel_first, &cancel, &err),
              BACKDROP_ERR_CANCELLED, err);
    CHECK(cancel.calls == 1);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, cancel_first, &cancel, &err),
              BACKDROP_ERR_CANCELLED, err);
    CHECK_ERR(backdrop_client_wait(client, task, 30000, NULL, &cancel, &err), BACKDROP_OK, err);
    CHECK(cancel.calls == 2);
    CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err), BACKDROP_OK, err);
    CHECK(bytes != UNTOUCHED && backdrop_bytes_len(bytes) > 100);
    backdrop_bytes_free(bytes);
    bytes = UNTOUCHED;
    backdrop_task_free(task);
    task = NULL;

    /* A task after a failed poll (unknown id): every later call reports it; nothing to free but
     * the task. */
    CHECK_CODE(backdrop_task_from_id("no-such-task-42", &task), BACKDROP_OK);
    CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_ERR_NOT_FOUND, err);
    CHECK_ERR(backdrop_client_poll(client, task, &err), BACKDROP_ERR_NOT_FOUND, err);
    CHECK_ERR(backdrop_client_wait(client, task, 5000, NULL, NULL, &err), BACKDROP_ERR_NOT_FOUND,
              err);
    CHECK_ERR(backdrop_client_download(client, task, 1, &bytes, &err),
              BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
    CHECK(bytes == UNTOUCHED && backdrop_task_state(task) == 0);
    backdrop_task_free(task);
    task = NULL;

    /* A task after timed-out waits (a task that never finishes): each wait times out again with
     * the same id, polls work, downloads are refused. */
    {
        const backdrop_client *never = client_for("BACKDROP_TEST_URL_NEVER");
        task = create(never, request);
        for (i = 0; i < 2; i++) {
            CHECK_CODE(backdrop_client_wait(never, task, 300, NULL, NULL, &err),
                       BACKDROP_ERR_TIMEOUT);
            CHECK(backdrop_error_task_id(err) != NULL &&
                  strcmp(backdrop_error_task_id(err), backdrop_task_id(task)) == 0);
            backdrop_error_free(err);
            err = NULL;
        }
        CHECK_ERR(backdrop_client_poll(never, task, &err), BACKDROP_OK, err);
        CHECK(backdrop_task_state(task) > 1);
        CHECK_ERR(backdrop_client_download(never, task, 1, &bytes, &err),
                  BACKDROP_ERR_TASK_NOT_SUCCEEDED, err);
        CHECK(bytes == UNTOUCHED);
        /* The error of a wait outlives the task and the client. */
        CHECK_CODE(backdrop_client_wait(never, task, 200, NULL, NULL, &kept),
                   BACKDROP_ERR_TIMEOUT);
        backdrop_task_free(task);
        task = NULL;
        backdrop_client_free(never);
        CHECK(backdrop_error_task_id(kept) != NULL && strlen(backdrop_error_task_id(kept)) > 0);
        CHECK(backdrop_error_recovery(kept) == BACKDROP_RECOVERY_RESUME);
        backdrop_error_free(kept);
        kept = NULL;
    }

    /* A download after failed downloads of an expired result: the same answer each time. */
    {
        const backdrop_client *expired = client_for("BACKDROP_TEST_URL_EXPIRED");
        task = create(expired, request);
        CHECK_ERR(backdrop_client_wait(expired, task, 30000, NULL, NULL, &err), BACKDROP_OK, err);
        for (i = 0; i < 2; i++) {
            CHECK_ERR(backdrop_client_download(expired, task, 1, &bytes, &err),
                      BACKDROP_ERR_RESULT_EXPIRED, err);
        }
        snprintf(path, sizeof path, "%s/expired.jpg", out);
        CHECK_ERR(backdrop_client_download_to_file(expired, task, 1, path, &err),
                  BACKDROP_ERR_RESULT_EXPIRED, err);
        CHECK(stat(path, &st) != 0);
        CHECK(bytes == UNTOUCHED && backdrop_task_state(task) == 1);
        backdrop_task_free(task);
        task = NULL;
        backdrop_client_free(expired);
    }

    /* A client after failed creates against a failing service: the same failure each time. */
    {
        const backdrop_client *failing =
            client_for_key(env("BACKDROP_TEST_URL_500"), key(), CLIENT_QPS, 1);
        for (i = 0; i < 2; i++) {
            CHECK_ERR(backdrop_client_create_task(failing, request, &again, &err),
                      BACKDROP_ERR_SERVER, err);
        }
        CHECK(again == UNTOUCHED);
        backdrop_client_free(failing);
    }

    /* And every _free still accepts NULL. */
    backdrop_error_free(NULL);
    backdrop_bytes_free(NULL);
    backdrop_task_free(NULL);
    backdrop_request_free(NULL);
    backdrop_client_builder_free(NULL);
    backdrop_client_free(NULL);

    backdrop_request_free(request);
    backdrop_client_free(client);
}

static void test_panic_boundary(void) {
    backdrop_error *err = NULL;
    if (backdrop_test_panic == NULL) {
        fprintf(stderr, "[%s] the library was built without the test-hooks feature\n",
                current_test);
        check_failures++;
        return;
    }
    CHECK_CODE(backdrop_test_panic(&err), BACKDROP_ERR_PANIC);
    CHECK(backdrop_error_code(err) == BACKDROP_ERR_PANIC);
    CHECK(strstr(backdrop_error_message(err), "deliberate panic") != NULL);
    backdrop_error_free(err);
    CHECK_CODE(backdrop_test_panic(NULL), BACKDROP_ERR_PANIC);
    /* The library still works after a caught panic. */
    CHECK(strlen(backdrop_version()) > 0);
    test_validation();
}

/* ------------------------------------------------------------------------------------------ */

struct test {
    const char *name;
    void (*run)(void);
    int by_default;
};

/* The code the full check gives for a rule name of verdicts.txt. */
static backdrop_result code_of_rule(const char *rule) {
    if (strcmp(rule, "ok") == 0) return BACKDROP_OK;
    if (strcmp(rule, "damaged_png") == 0) return BACKDROP_ERR_INVALID_DAMAGED_PNG;
    if (strcmp(rule, "trailing_data") == 0) return BACKDROP_ERR_INVALID_TRAILING_DATA;
    if (strcmp(rule, "damaged_image_data") == 0) return BACKDROP_ERR_INVALID_DAMAGED_IMAGE_DATA;
    if (strcmp(rule, "nothing_transparent") == 0) return BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT;
    if (strcmp(rule, "nothing_visible") == 0) return BACKDROP_ERR_INVALID_NOTHING_VISIBLE;
    return BACKDROP_ERR_OTHER;
}

/* Every PNG fixture of core: the verdict of the full check, of the header alone, of the
 * override; a request of each refused before anything is sent (zero creates at the emulator),
 * the valid ones created. */
static void test_png_fixtures(void) {
    const char *folder = env("BACKDROP_TEST_PNG_FIXTURES");
    const char *url = env("BACKDROP_TEST_URL");
    const backdrop_client *client = client_for("BACKDROP_TEST_URL");
    char path[4096];
    char name[256];
    char rule[64];
    FILE *verdicts;
    int fixtures = 0;
    long long creates = counter(url, "create_requests");
    long long valid = 0;

    snprintf(path, sizeof path, "%s/verdicts.txt", folder);
    verdicts = fopen(path, "r");
    CHECK(verdicts != NULL);
    if (verdicts == NULL) {
        backdrop_client_free(client);
        return;
    }
    while (fscanf(verdicts, "%255s %63s", name, rule) == 2) {
        backdrop_result expected = code_of_rule(rule);
        int pixel_rule = expected == BACKDROP_ERR_INVALID_NOTHING_TRANSPARENT ||
                         expected == BACKDROP_ERR_INVALID_NOTHING_VISIBLE;
        backdrop_png_info info;
        backdrop_error *err = NULL;
        backdrop_request *request = request_with("a beach", 1);
        backdrop_task *task = NULL;
        backdrop_result code;

        fixtures++;
        CHECK(expected != BACKDROP_ERR_OTHER);
        snprintf(path, sizeof path, "%s/%s", folder, name);
        memset(&info, 0xAB, sizeof info);
        code = backdrop_validate_png_file(path, &info, &err);
        if (!check_code_at(__FILE__, __LINE__, name, code, expected)) {
            fprintf(stderr, "    detail: %s\n", backdrop_error_message(err));
        }
        if (code == BACKDROP_OK) {
            CHECK(info.pixels_checked);
            CHECK(info.total_pixels == (uint64_t)info.width * info.height);
            CHECK(info.transparent_pixels > 0 && info.transparent_pixels < info.total_pixels);
        } else {
            CHECK(err != NULL && strlen(backdrop_error_message(err)) > 0);
        }
        backdrop_error_free(err);
        err = NULL;
        /* The header alone lets every one of them through. */
        CHECK_ERR(backdrop_validate_png_file_with(path, BACKDROP_VALIDATE_HEADER_ONLY, &info, &err),
                  BACKDROP_OK, err);
        CHECK(!info.pixels_checked && info.total_pixels == 0);
        /* The override lets the pixel rules through, nothing else. */
        CHECK_ERR(backdrop_validate_png_file_with(path, BACKDROP_VALIDATE_ALLOW_OPAQUE, NULL, &err),
                  pixel_rule ? BACKDROP_OK : expected, err);
        /* A request of it: refused before sending, or created. */
        CHECK_CODE(backdrop_request_set_image_path(request, path), BACKDROP_OK);
        CHECK_ERR(backdrop_request_validate(request, &err), expected, err);
        code = backdrop_client_create_task(client, request, &task, &err);
        CHECK_CODE(code, expected);
        if (code == BACKDROP_OK) {
            valid++;
        }
        backdrop_error_free(err);
        err = NULL;
        backdrop_task_free(task);
        backdrop_request_free(request);
    }
    fclose(verdicts);
    CHECK(fixtures == 14);
    CHECK(valid == 5);
    CHECK(counter(url, "create_requests") == creates + valid);
    /* Unknown flags are refused. */
    {
        backdrop_error *err = NULL;
        snprintf(path, sizeof path, "%s/valid-rgba.png", folder);
        CHECK_ERR(backdrop_validate_png_file_with(path, 64, NULL, &err),
                  BACKDROP_ERR_INVALID_ARGUMENT, err);
    }
    backdrop_client_free(client);
}

static const struct test tests[] = {
    {"version_and_messages", test_version_and_messages, 1},
    {"validation", test_validation, 1},
    {"request_validation", test_request_validation, 1},
    {"builder_rules", test_builder_rules, 1},
    {"null_parameters", test_null_parameters, 1},
    {"whole_flow", test_whole_flow, 1},
    {"credit_cap", test_credit_cap, 1},
    {"service_errors", test_service_errors, 1},
    {"fault_emulators", test_fault_emulators, 1},
    {"cancellation_and_nesting", test_cancellation_and_nesting, 1},
    {"threads_share_one_client", test_threads_share_one_client, 1},
    {"resume_from_task_id", test_resume_from_task_id, 1},
    {"buffer_lengths", test_buffer_lengths, 1},
    {"strings", test_strings, 1},
    {"calls_after_errors", test_calls_after_errors, 1},
    {"workers_block_sigpipe", test_workers_block_sigpipe, 1},
    {"png_fixtures", test_png_fixtures, 1},
    {"panic_boundary", test_panic_boundary, 0},
};

int main(int argc, char **argv) {
    size_t i;
    int passed = 0;
    int failed = 0;
    int argi;

    for (i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int selected = argc == 1 ? tests[i].by_default : 0;
        for (argi = 1; argi < argc; argi++) {
            if (strcmp(argv[argi], tests[i].name) == 0) selected = 1;
        }
        if (!selected) continue;
        current_test = tests[i].name;
        check_failures = 0;
        fprintf(stderr, "test %s ...\n", tests[i].name);
        tests[i].run();
        if (check_failures == 0) {
            passed++;
            fprintf(stderr, "test %s ... ok\n", tests[i].name);
        } else {
            failed++;
            fprintf(stderr, "test %s ... FAILED (%d checks)\n", tests[i].name, check_failures);
        }
    }
    printf("c: %d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
