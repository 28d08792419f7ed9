/*
 * backdrop.hpp — a header-only C++17 wrapper of libbackdrop (backdrop.h).
 *
 * RAII types (move-only; each frees its C object exactly once), std::string and
 * std::vector<std::uint8_t> in and out, and one exception type, backdrop::error, thrown by
 * every call that fails. Link it like the C library: `pkg-config --cflags --libs backdrop`.
 *
 *     backdrop::client client = backdrop::client_builder(key).base_url(url).build();
 *     backdrop::request request;
 *     request.image_path("product.png").prompt("a marble countertop").batch_size(1);
 *     backdrop::task task = client.create_task(request);
 *     client.wait(task, std::chrono::minutes(5), [](const backdrop::progress &p) {
 *         std::cerr << p.state << " " << p.percent << "%\n";
 *         return backdrop::progress_action::keep_waiting;
 *     });
 *     std::vector<std::uint8_t> image = client.download(task, 1);  // image_1: numbered from 1
 *
 * Threads: a backdrop::client may be used from any number of threads at once through const
 * references (all of its calls share the key's rate limit); requests, tasks and builders must
 * not be changed by two threads at once. The progress callback runs on the thread that called
 * wait(); an exception thrown from it is caught inside the library boundary, cancels the wait and
 * is rethrown from wait() — it never crosses the C code. fork() after creating a client is not
 * supported.
 */
#ifndef BACKDROP_HPP
#define BACKDROP_HPP

#include "backdrop.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backdrop {

/// The text of a result code (any code, known to this version or not).
inline std::string result_message(std::uint32_t code) {
    std::size_t needed = backdrop_result_message(code, nullptr, 0);
    std::string text(needed, '\0');
    backdrop_result_message(code, text.data(), text.size());
    text.resize(needed > 0 ? needed - 1 : 0);
    return text;
}

/// The library's version, such as "0.1.0".
inline std::string version() { return backdrop_version(); }

/// What a failed call throws: the result code and the library's detail.
class error : public std::runtime_error {
  public:
    error(backdrop_result code, const std::string &message, std::uint16_t http_status,
          std::optional<std::int32_t> task_state, std::string task_id,
          backdrop_recovery recovery)
        : std::runtime_error(message), code_(code), http_status_(http_status),
          task_state_(task_state), task_id_(std::move(task_id)), recovery_(recovery) {}

    /// The result code (one of the BACKDROP_ERR_* values).
    backdrop_result code() const noexcept { return code_; }
    /// The code's name, such as "BACKDROP_ERR_TIMEOUT".
    std::string_view name() const noexcept { return backdrop_result_name(code_); }
    /// The HTTP status behind the failure, or 0.
    std::uint16_t http_status() const noexcept { return http_status_; }
    /// The task state behind the failure (a failed task's state, a timed-out task's last one).
    const std::optional<std::int32_t> &task_state() const noexcept { return task_state_; }
    /// The task the failure concerns, or "".
    const std::string &task_id() const noexcept { return task_id_; }
    /// What can be done about the failure: one of the BACKDROP_RECOVERY_* values (see
    /// `backdrop_recovery` in backdrop.h), the same answer the CLI and the Lambda act on.
    backdrop_recovery recovery() const noexcept { return recovery_; }
    /// True when a create may have been accepted (and charged) although it failed: do not
    /// create the same input again unless the user accepts paying twice.
    bool may_have_created_task() const noexcept {
        return recovery_ == BACKDROP_RECOVERY_UNCONFIRMED;
    }
    /// True when starting over (a new create for the same input) is safe and may succeed
    /// later; false whenever a task may exist (see recovery()).
    bool transient() const noexcept { return recovery_ == BACKDROP_RECOVERY_RETRY; }

  private:
    backdrop_result code_;
    std::uint16_t http_status_;
    std::optional<std::int32_t> task_state_;
    std::string task_id_;
    backdrop_recovery recovery_;
};

namespace detail {

struct error_free {
    void operator()(backdrop_error *e) const noexcept { backdrop_error_free(e); }
};
struct builder_free {
    void operator()(backdrop_client_builder *b) const noexcept { backdrop_client_builder_free(b); }
};
struct client_free {
    void operator()(const backdrop_client *c) const noexcept { backdrop_client_free(c); }
};
struct request_free {
    void operator()(backdrop_request *r) const noexcept { backdrop_request_free(r); }
};
struct task_free {
    void operator()(backdrop_task *t) const noexcept { backdrop_task_free(t); }
};
struct bytes_free {
    void operator()(backdrop_bytes *b) const noexcept { backdrop_bytes_free(b); }
};

/// Throws the error for `code`, taking ownership of `raw` (which may be NULL).
[[noreturn]] inline void throw_error(backdrop_result code, backdrop_error *raw) {
    std::unique_ptr<backdrop_error, error_free> owned(raw);
    if (!owned) {
        throw error(code, result_message(code), 0, std::nullopt, std::string(),
                    BACKDROP_RECOVERY_NONE);
    }
    std::int32_t state = 0;
    std::optional<std::int32_t> task_state;
    if (backdrop_error_task_state(owned.get(), &state)) {
        task_state = state;
    }
    const char *task_id = backdrop_error_task_id(owned.get());
    throw error(backdrop_error_code(owned.get()), backdrop_error_message(owned.get()),
                backdrop_error_http_status(owned.get()), task_state,
                task_id != nullptr ? std::string(task_id) : std::string(),
                backdrop_error_recovery(owned.get()));
}

/// Throws when `code` is not BACKDROP_OK; frees `raw` either way.
inline void check(backdrop_result code, backdrop_error *raw = nullptr) {
    if (code != BACKDROP_OK) {
        throw_error(code, raw);
    }
    backdrop_error_free(raw);
}

/// Runs a C call that takes a `backdrop_error **` (passed to `call`) and throws its failure. The
/// code is read before the error, in that order (never as two arguments of one call, whose
/// evaluation order C++ leaves open).
template <typename Call>
inline void invoke(Call &&call) {
    backdrop_error *err = nullptr;
    const backdrop_result code = call(&err);
    check(code, err);
}

inline std::uint32_t millis(std::chrono::milliseconds value) {
    if (value.count() <= 0) {
        return 0;
    }
    if (value.count() > static_cast<std::chrono::milliseconds::rep>(UINT32_MAX)) {
        return UINT32_MAX;
    }
    return static_cast<std::uint32_t>(value.count());
}

}  // namespace detail

/// What the header of a valid source PNG says.
struct png_info {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::uint8_t bit_depth = 0;
    std::uint8_t color_type = 0;
    bool alpha_channel = false;
    std::uint64_t file_size = 0;
};

namespace detail {
inline png_info convert(const backdrop_png_info &raw) {
    png_info info;
    info.width = raw.width;
    info.height = raw.height;
    info.bit_depth = raw.bit_depth;
    info.color_type = raw.color_type;
    info.alpha_channel = raw.alpha_channel;
    info.file_size = raw.file_size;
    return info;
}
}  // namespace detail

/// Checks a PNG file against the service's rules (header only, nothing sent); throws
/// backdrop::error with the broken rule's code.
inline png_info validate_png_file(const std::string &path) {
    backdrop_png_info raw{};
    detail::invoke([&](backdrop_error **err) {
        return backdrop_validate_png_file(path.c_str(), &raw, err);
    });
    return detail::convert(raw);
}

/// Checks PNG bytes against the service's rules; throws backdrop::error.
inline png_info validate_png(const std::vector<std::uint8_t> &data) {
    static const std::uint8_t empty = 0;
    backdrop_png_info raw{};
    detail::invoke([&](backdrop_error **err) {
        return backdrop_validate_png_bytes(data.empty() ? &empty : data.data(), data.size(), &raw, err);
    });
    return detail::convert(raw);
}

/// What to generate. Setters replace their own field and return *this for chaining; the rules
/// between fields are checked by validate() and by client::create_task.
class request {
  public:
    request() {
        backdrop_request *raw = nullptr;
        detail::check(backdrop_request_new(&raw));
        handle_.reset(raw);
    }

    /// The source image is the PNG file at `path`.
    request &image_path(const std::string &path) {
        detail::check(backdrop_request_set_image_path(handle_.get(), path.c_str()));
        return *this;
    }
    /// The source image is these PNG bytes (copied).
    request &image_bytes(const std::vector<std::uint8_t> &data,
                         const std::string &file_name = "image.png") {
        static const std::uint8_t empty = 0;
        detail::check(backdrop_request_set_image_bytes(handle_.get(),
                                                       data.empty() ? &empty : data.data(),
                                                       data.size(), file_name.c_str()));
        return *this;
    }
    /// The service downloads the source image from `url`.
    request &image_url(const std::string &url) {
        detail::check(backdrop_request_set_image_url(handle_.get(), url.c_str()));
        return *this;
    }
    /// Describes the background with a prompt (1 to 1024 characters).
    request &prompt(const std::string &prompt) {
        detail::check(backdrop_request_set_prompt(handle_.get(), prompt.c_str()));
        return *this;
    }
    /// What the background should not contain.
    request &negative_prompt(const std::string &negative_prompt) {
        detail::check(
            backdrop_request_set_negative_prompt(handle_.get(), negative_prompt.c_str()));
        return *this;
    }
    /// Uses a background template id instead of a prompt.
    request &scene_type(std::int64_t scene_type) {
        detail::check(backdrop_request_set_scene_type(handle_.get(), scene_type));
        return *this;
    }
    /// 1 or 2 images (default 2).
    request &batch_size(std::uint32_t batch_size) {
        detail::check(backdrop_request_set_batch_size(handle_.get(), batch_size));
        return *this;
    }
    /// Checks every rule locally, as a create would; throws backdrop::error.
    void validate() const {
        detail::invoke([&](backdrop_error **err) {
            return backdrop_request_validate(handle_.get(), err);
        });
    }

    /// The C handle, owned by this object.
    const backdrop_request *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<backdrop_request, detail::request_free> handle_;
};

/// A generation task at the service: its id and the last state seen.
class task {
  public:
    /// A task handle for a known id, to resume after a restart.
    static task from_id(const std::string &task_id) {
        backdrop_task *raw = nullptr;
        detail::check(backdrop_task_from_id(task_id.c_str(), &raw));
        return task(raw);
    }

    /// The task id.
    std::string id() const {
        const char *id = backdrop_task_id(handle_.get());
        return id != nullptr ? std::string(id) : std::string();
    }
    /// The last state seen: 1 succeeded, below 0 failed, otherwise still running.
    std::int32_t state() const noexcept { return backdrop_task_state(handle_.get()); }
    /// The last progress seen (0 to 100), or -1 when unknown.
    double progress() const noexcept { return backdrop_task_progress(handle_.get()); }
    /// The number of result images once the task succeeded, else 0; they are numbered 1 to
    /// this count.
    std::size_t result_count() const noexcept { return backdrop_task_result_count(handle_.get()); }
    /// True once the task succeeded.
    bool succeeded() const noexcept { return state() == 1; }

    /// The C handle, owned by this object.
    backdrop_task *get() const noexcept { return handle_.get(); }

  private:
    friend class client;
    explicit task(backdrop_task *raw) : handle_(raw) {}
    std::unique_ptr<backdrop_task, detail::task_free> handle_;
};

/// One poll's view of a task, passed to a progress callback (valid during the call only).
struct progress {
    std::string_view task_id;
    std::int32_t state = 0;
    /// 0 to 100, or -1 when the service reported none.
    double percent = -1.0;
};

/// What a progress callback wants next.
enum class progress_action { keep_waiting, cancel };

/// Called after every poll of client::wait.
using progress_callback = std::function<progress_action(const progress &)>;

namespace detail {

struct wait_context {
    const progress_callback *callback = nullptr;
    std::exception_ptr failure;
};

extern "C" {
/// Calls the std::function; no exception leaves it (one is kept and cancels the wait).
inline std::uint32_t backdrop_hpp_progress_trampoline(void *userdata,
                                                       const backdrop_task *view) noexcept {
    auto *context = static_cast<wait_context *>(userdata);
    try {
        progress event;
        const char *id = backdrop_task_id(view);
        event.task_id = id != nullptr ? std::string_view(id) : std::string_view();
        event.state = backdrop_task_state(view);
        event.percent = backdrop_task_progress(view);
        return (*context->callback)(event) == progress_action::cancel ? BACKDROP_PROGRESS_CANCEL
                                                                      : BACKDROP_PROGRESS_CONTINUE;
    } catch (...) {
        context->failure = std::current_exception();
        return BACKDROP_PROGRESS_CANCEL;
    }
}
}  // extern "C"

}  // namespace detail

/// A client of the service, bound to one API key. Move-only; const member functions may be
/// called from many threads at once.
class client {
  public:
    /// Creates a task (validated locally first, then uploaded).
    task create_task(const request &req) const {
        backdrop_task *raw = nullptr;
        detail::invoke([&](backdrop_error **err) {
            return backdrop_client_create_task(handle_.get(), req.get(), &raw, err);
        });
        return task(raw);
    }

    /// Queries the task once and records what the service said in `t`.
    void poll(task &t) const {
        detail::invoke([&](backdrop_error **err) {
            return backdrop_client_poll(handle_.get(), t.get(), err);
        });
    }

    /// Waits until the task succeeds; throws backdrop::error when it fails, times out (0: the
    /// spec's 300 s) or the callback cancels. An exception thrown by `on_progress` cancels the
    /// wait and is rethrown here.
    void wait(task &t, std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
              const progress_callback &on_progress = progress_callback()) const {
        backdrop_error *err = nullptr;
        detail::wait_context context;
        context.callback = &on_progress;
        const backdrop_result code = backdrop_client_wait(
            handle_.get(), t.get(), detail::millis(timeout),
            on_progress ? &detail::backdrop_hpp_progress_trampoline : nullptr,
            on_progress ? &context : nullptr, &err);
        if (context.failure) {
            backdrop_error_free(err);
            std::rethrow_exception(context.failure);
        }
        detail::check(code, err);
    }

    /// Downloads result `number` of a succeeded task: numbered from 1 as the spec's fields (1 for
    /// data.image_1, 2 for data.image_2) up to task::result_count().
    std::vector<std::uint8_t> download(const task &t, std::size_t number) const {
        backdrop_bytes *raw = nullptr;
        detail::invoke([&](backdrop_error **err) {
            return backdrop_client_download(handle_.get(), t.get(), number, &raw, err);
        });
        std::unique_ptr<backdrop_bytes, detail::bytes_free> bytes(raw);
        const std::uint8_t *data = backdrop_bytes_data(bytes.get());
        return std::vector<std::uint8_t>(data, data + backdrop_bytes_len(bytes.get()));
    }

    /// Downloads result `number` (1 or 2) of a succeeded task into the file at `path`
    /// (atomically).
    void download_to_file(const task &t, std::size_t number, const std::string &path) const {
        detail::invoke([&](backdrop_error **err) {
            return backdrop_client_download_to_file(handle_.get(), t.get(), number, path.c_str(),
                                                    err);
        });
    }

    /// API requests sent so far by this client, from all threads.
    std::uint64_t requests_sent() const noexcept {
        return backdrop_client_requests_sent(handle_.get());
    }

    /// The C handle, owned by this object.
    const backdrop_client *get() const noexcept { return handle_.get(); }

  private:
    friend class client_builder;
    explicit client(const backdrop_client *raw) : handle_(raw) {}
    std::unique_ptr<const backdrop_client, detail::client_free> handle_;
};

/// The configuration of a client. Setters return *this for chaining; build() may be called once.
class client_builder {
  public:
    explicit client_builder(const std::string &api_key) {
        backdrop_client_builder *raw = nullptr;
        detail::check(backdrop_client_builder_new(api_key.c_str(), &raw));
        handle_.reset(raw);
    }

    /// The service's base URL (default https://techhk.aoscdn.com).
    client_builder &base_url(const std::string &url) {
        detail::check(backdrop_client_builder_set_base_url(handle_.get(), url.c_str()));
        return *this;
    }
    /// The key's requests per second (default 2).
    client_builder &qps(std::uint32_t qps) {
        detail::check(backdrop_client_builder_set_qps(handle_.get(), qps));
        return *this;
    }
    /// At most `max_requests` in any `window`.
    client_builder &rate_limit(std::uint32_t max_requests, std::chrono::milliseconds window) {
        detail::check(backdrop_client_builder_set_rate_limit(handle_.get(), max_requests,
                                                             detail::millis(window)));
        return *this;
    }
    /// Time allowed to connect (default 10 s).
    client_builder &connect_timeout(std::chrono::milliseconds timeout) {
        detail::check(backdrop_client_builder_set_connect_timeout_ms(handle_.get(),
                                                                     detail::millis(timeout)));
        return *this;
    }
    /// Time allowed for one API request (default 120 s).
    client_builder &request_timeout(std::chrono::milliseconds timeout) {
        detail::check(backdrop_client_builder_set_request_timeout_ms(handle_.get(),
                                                                     detail::millis(timeout)));
        return *this;
    }
    /// Time allowed for one download (default 120 s).
    client_builder &download_timeout(std::chrono::milliseconds timeout) {
        detail::check(backdrop_client_builder_set_download_timeout_ms(handle_.get(),
                                                                      detail::millis(timeout)));
        return *this;
    }
    /// Retries: attempts (first included) and the backoff range.
    client_builder &retry(std::uint32_t max_attempts, std::chrono::milliseconds initial_backoff,
                          std::chrono::milliseconds max_backoff) {
        detail::check(backdrop_client_builder_set_retry(handle_.get(), max_attempts,
                                                        detail::millis(initial_backoff),
                                                        detail::millis(max_backoff)));
        return *this;
    }
    /// Time between two polls of client::wait under the documented policy, and the longest gap
    /// between polls under the adaptive one while the budget is idle (default 1 s).
    client_builder &poll_interval(std::chrono::milliseconds interval) {
        detail::check(backdrop_client_builder_set_poll_interval_ms(handle_.get(),
                                                                   detail::millis(interval)));
        return *this;
    }
    /// How client::wait plans its polls (default BACKDROP_POLL_ADAPTIVE).
    client_builder &poll_policy(backdrop_poll_policy policy) {
        detail::check(backdrop_client_builder_set_poll_policy(handle_.get(),
                                                              static_cast<uint32_t>(policy)));
        return *this;
    }

    /// Builds the client; the builder is used up.
    client build() {
        const backdrop_client *raw = nullptr;
        detail::invoke([&](backdrop_error **err) {
            return backdrop_client_builder_build(handle_.get(), &raw, err);
        });
        return client(raw);
    }

  private:
    std::unique_ptr<backdrop_client_builder, detail::builder_free> handle_;
};

}  // namespace backdrop

#endif  // BACKDROP_HPP
