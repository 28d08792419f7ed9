// GoogleTest suite of include/backdrop.hpp: RAII, exceptions, the progress callback and the whole
// flow, against the emulators started by crates/ffi/tests/run.sh (same environment as the C
// suite: BACKDROP_TEST_URL, BACKDROP_TEST_URL_NEVER, BACKDROP_TEST_KEY, BACKDROP_TEST_FIXTURE,
// BACKDROP_TEST_OUT, BACKDROP_TEST_VERSION).
#include <backdrop.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

std::string env(const char *name) {
    const char *value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(std::string(name) + " is not set (run crates/ffi/tests/run.sh)");
    }
    return value;
}

backdrop::client client_for(const std::string &url, const std::string &key = env("BACKDROP_TEST_KEY")) {
    return backdrop::client_builder(key)
        .base_url(url)
        .qps(10)
        .poll_interval(100ms)
        .retry(3, 20ms, 200ms)
        .request_timeout(30s)
        .build();
}

backdrop::request request_with(const std::string &prompt, std::uint32_t batch = 1) {
    backdrop::request request;
    request.image_path(env("BACKDROP_TEST_FIXTURE")).prompt(prompt).batch_size(batch);
    return request;
}

bool is_jpeg(const std::vector<std::uint8_t> &data) {
    return data.size() > 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
}

std::vector<std::uint8_t> read_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in),
                                     std::istreambuf_iterator<char>());
}

// Runs `call`, expecting a backdrop::error with `code`; returns it.
template <typename Call>
backdrop::error expect_error(backdrop_result code, Call call) {
    try {
        call();
    } catch (const backdrop::error &e) {
        EXPECT_EQ(e.code(), code) << e.name() << ": " << e.what();
        EXPECT_STRNE(e.what(), "");
        return e;
    }
    ADD_FAILURE() << "expected backdrop::error " << backdrop_result_name(code);
    return backdrop::error(BACKDROP_OK, "", 0, std::nullopt, "", BACKDROP_RECOVERY_NONE);
}

struct stop_waiting : std::runtime_error {
    stop_waiting() : std::runtime_error("the callback threw") {}
};

}  // namespace

TEST(Library, VersionAndMessages) {
    EXPECT_EQ(backdrop::version(), env("BACKDROP_TEST_VERSION"));
    EXPECT_EQ(backdrop::result_message(BACKDROP_OK), "success");
    EXPECT_NE(backdrop::result_message(BACKDROP_ERR_TIMEOUT).find("resume"), std::string::npos);
    EXPECT_NE(backdrop::result_message(4242).find("4242"), std::string::npos);
}

TEST(Raii, TypesAreMoveOnly) {
    static_assert(!std::is_copy_constructible_v<backdrop::client>);
    static_assert(!std::is_copy_assignable_v<backdrop::client>);
    static_assert(std::is_nothrow_move_constructible_v<backdrop::client>);
    static_assert(!std::is_copy_constructible_v<backdrop::request>);
    static_assert(std::is_nothrow_move_constructible_v<backdrop::request>);
    static_assert(!std::is_copy_constructible_v<backdrop::task>);
    static_assert(std::is_nothrow_move_assignable_v<backdrop::task>);
    static_assert(!std::is_copy_constructible_v<backdrop::client_builder>);
    static_assert(std::is_base_of_v<std::runtime_error, backdrop::error>);
    SUCCEED();
}

TEST(Raii, MovedFromObjectsFailCleanly) {
    backdrop::request first;
    backdrop::request second = std::move(first);
    second.prompt("a beach");
    // The moved-from request holds no handle: the library sees NULL and says so.
    expect_error(BACKDROP_ERR_NULL_PARAMETER, [&] { first.prompt("a beach"); });  // NOLINT

    backdrop::client client = client_for(env("BACKDROP_TEST_URL"));
    backdrop::client moved = std::move(client);
    backdrop::task task = backdrop::task::from_id("some-task");
    expect_error(BACKDROP_ERR_NULL_PARAMETER, [&] { client.poll(task); });  // NOLINT
    EXPECT_EQ(task.id(), "some-task");
    EXPECT_EQ(task.state(), 0);
    EXPECT_EQ(task.result_count(), 0u);
}

TEST(Raii, BuilderIsUsedUpByBuild) {
    backdrop::client_builder builder(env("BACKDROP_TEST_KEY"));
    builder.base_url(env("BACKDROP_TEST_URL"));
    backdrop::client client = builder.build();
    expect_error(BACKDROP_ERR_ALREADY_USED, [&] { builder.build(); });
    expect_error(BACKDROP_ERR_ALREADY_USED, [&] { builder.qps(3); });
    expect_error(BACKDROP_ERR_INVALID_ARGUMENT,
                 [] { backdrop::client_builder("k").poll_interval(0ms); });
    auto config = expect_error(BACKDROP_ERR_CONFIG, [] {
        backdrop::client_builder("secret-key-0123456789").base_url("not a url").build();
    });
    EXPECT_EQ(std::string(config.what()).find("secret-key-0123456789"), std::string::npos);
}

TEST(Validation, RulesBecomeExceptionsWithTheirCodes) {
    backdrop::png_info info = backdrop::validate_png_file(env("BACKDROP_TEST_FIXTURE"));
    EXPECT_EQ(info.width, 480u);
    EXPECT_EQ(info.height, 640u);
    EXPECT_TRUE(info.alpha_channel);
    std::vector<std::uint8_t> jpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F'};
    expect_error(BACKDROP_ERR_INVALID_NOT_PNG, [&] { backdrop::validate_png(jpeg); });
    expect_error(BACKDROP_ERR_INVALID_EMPTY_FILE, [] { backdrop::validate_png({}); });
    expect_error(BACKDROP_ERR_IO, [] { backdrop::validate_png_file("/nonexistent/x.png"); });

    backdrop::request both = request_with("a beach");
    both.scene_type(105);
    expect_error(BACKDROP_ERR_INVALID_BACKGROUND, [&] { both.validate(); });
    backdrop::request long_prompt = request_with(std::string(1025, 'a'));
    expect_error(BACKDROP_ERR_INVALID_PROMPT_TOO_LONG, [&] { long_prompt.validate(); });
    backdrop::request from_bytes;
    from_bytes.image_bytes(jpeg).prompt("a beach");
    auto client = client_for(env("BACKDROP_TEST_URL"));
    expect_error(BACKDROP_ERR_INVALID_NOT_PNG, [&] { client.create_task(from_bytes); });
}

TEST(Flow, CreateWaitDownload) {
    const backdrop::client client = client_for(env("BACKDROP_TEST_URL"));
    backdrop::request request = request_with("a marble countertop", 2);
    request.negative_prompt("people");
    request.validate();
    backdrop::task task = client.create_task(request);
    EXPECT_FALSE(task.id().empty());
    expect_error(BACKDROP_ERR_TASK_NOT_SUCCEEDED, [&] { client.download(task, 1); });

    std::vector<std::int32_t> states;
    std::string seen_id;
    client.wait(task, 30s, [&](const backdrop::progress &p) {
        states.push_back(p.state);
        seen_id = std::string(p.task_id);
        return backdrop::progress_action::keep_waiting;
    });
    ASSERT_FALSE(states.empty());
    EXPECT_EQ(states.back(), 1);
    EXPECT_EQ(seen_id, task.id());
    EXPECT_TRUE(task.succeeded());
    EXPECT_EQ(task.result_count(), 2u);
    EXPECT_DOUBLE_EQ(task.progress(), 100.0);

    EXPECT_TRUE(is_jpeg(client.download(task, 1)));
    const std::string path = env("BACKDROP_TEST_OUT") + "/cpp-flow-2.jpg";
    client.download_to_file(task, 2, path);
    EXPECT_TRUE(is_jpeg(read_file(path)));
    expect_error(BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE, [&] { client.download(task, 3); });
    // Numbered from 1, as the spec's data.image_1: 0 is no result, and the message says so.
    auto zero = expect_error(BACKDROP_ERR_RESULT_NUMBER_OUT_OF_RANGE,
                             [&] { client.download(task, 0); });
    EXPECT_NE(std::string(zero.what()).find("start at 1"), std::string::npos) << zero.what();
    EXPECT_GT(client.requests_sent(), 2u);
}

TEST(Errors, CarryCodeStatusStateAndTaskId) {
    const backdrop::client client = client_for(env("BACKDROP_TEST_URL"));

    backdrop::task unknown = backdrop::task::from_id("no-such-task");
    auto not_found = expect_error(BACKDROP_ERR_NOT_FOUND, [&] { client.poll(unknown); });
    EXPECT_EQ(not_found.http_status(), 404);
    EXPECT_EQ(not_found.task_id(), "no-such-task");
    EXPECT_EQ(not_found.name(), "BACKDROP_ERR_NOT_FOUND");
    EXPECT_EQ(not_found.recovery(), BACKDROP_RECOVERY_RESULTS_LOST);
    EXPECT_FALSE(not_found.transient());

    backdrop::task failing = client.create_task(request_with("a beach emulator:fail=-17"));
    auto failed = expect_error(BACKDROP_ERR_TASK_FAILED, [&] { client.wait(failing, 30s); });
    ASSERT_TRUE(failed.task_state().has_value());
    EXPECT_EQ(*failed.task_state(), -17);
    EXPECT_EQ(failed.task_id(), failing.id());
    EXPECT_FALSE(failed.transient());
    EXPECT_EQ(failed.recovery(), BACKDROP_RECOVERY_PERMANENT);

    const std::string wrong_key = "wrong-key-5e1d8c0a77";
    const backdrop::client stranger = client_for(env("BACKDROP_TEST_URL"), wrong_key);
    auto refused = expect_error(BACKDROP_ERR_UNAUTHORIZED,
                                [&] { stranger.create_task(request_with("a beach")); });
    EXPECT_EQ(refused.http_status(), 401);
    EXPECT_EQ(std::string(refused.what()).find(wrong_key), std::string::npos);
}

TEST(Errors, ACreateThatMayHaveBeenChargedSaysSo) {
    for (const char *name : {"BACKDROP_TEST_URL_DROP", "BACKDROP_TEST_URL_504",
                             "BACKDROP_TEST_URL_GARBLED"}) {
        const backdrop::client client = client_for(env(name));
        try {
            client.create_task(request_with("a beach"));
            ADD_FAILURE() << name << ": the create succeeded";
        } catch (const backdrop::error &e) {
            EXPECT_TRUE(e.may_have_created_task()) << name << ": " << e.what();
            EXPECT_EQ(e.recovery(), BACKDROP_RECOVERY_UNCONFIRMED) << name;
            EXPECT_FALSE(e.transient()) << name;
        }
    }
}

TEST(Callback, CancelAndTimeout) {
    const backdrop::client client = client_for(env("BACKDROP_TEST_URL_NEVER"));
    backdrop::task task = client.create_task(request_with("a beach"));
    int calls = 0;
    auto cancelled = expect_error(BACKDROP_ERR_CANCELLED, [&] {
        client.wait(task, 30s, [&](const backdrop::progress &) {
            return ++calls == 2 ? backdrop::progress_action::cancel
                                : backdrop::progress_action::keep_waiting;
        });
    });
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(cancelled.task_id(), task.id());

    auto timed_out = expect_error(BACKDROP_ERR_TIMEOUT, [&] { client.wait(task, 500ms); });
    EXPECT_TRUE(timed_out.task_state().has_value());
    EXPECT_EQ(timed_out.recovery(), BACKDROP_RECOVERY_RESUME);
    EXPECT_FALSE(timed_out.transient()) << "the task exists: resume it, never start over";
    EXPECT_FALSE(timed_out.may_have_created_task());
}

TEST(Callback, ExceptionsDoNotCrossTheCBoundary) {
    const backdrop::client client = client_for(env("BACKDROP_TEST_URL_NEVER"));
    backdrop::task task = client.create_task(request_with("a beach"));
    int calls = 0;
    // The exception is caught in the trampoline, cancels the wait, and is rethrown as itself.
    EXPECT_THROW(client.wait(task, 30s,
                             [&](const backdrop::progress &) -> backdrop::progress_action {
                                 ++calls;
                                 throw stop_waiting();
                             }),
                 stop_waiting);
    EXPECT_EQ(calls, 1);
    // The client is still fine afterwards.
    client.poll(task);
    EXPECT_GE(task.state(), 0);
}

TEST(Threads, EightThreadsShareOneClient) {
    const backdrop::client client = client_for(env("BACKDROP_TEST_URL"));
    const backdrop::request request = request_with("a wooden table");
    std::atomic<int> succeeded{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&] {
            try {
                backdrop::task task = client.create_task(request);
                client.wait(task, 60s);
                if (is_jpeg(client.download(task, 1))) {
                    ++succeeded;
                }
            } catch (const std::exception &e) {
                ADD_FAILURE() << e.what();
            }
        });
    }
    for (auto &thread : threads) {
        thread.join();
    }
    EXPECT_EQ(succeeded.load(), 8);
}

TEST(Resume, FromATaskIdString) {
    std::string saved;
    {
        const backdrop::client first = client_for(env("BACKDROP_TEST_URL"));
        saved = first.create_task(request_with("a stone wall")).id();
    }
    const backdrop::client second = client_for(env("BACKDROP_TEST_URL"));
    backdrop::task task = backdrop::task::from_id(saved);
    second.wait(task, 30s);
    EXPECT_EQ(task.result_count(), 1u);
    EXPECT_TRUE(is_jpeg(second.download(task, 1)));
}
