// backdrop.h and backdrop.hpp compile cleanly as C++17 (see run.sh for the flags).

// A program's own header may forward-declare the info struct without including backdrop.h.
struct backdrop_png_info;
static unsigned width_of(const backdrop_png_info *info);

#include <backdrop.h>
#include <backdrop.hpp>

#include <cstdint>
#include <type_traits>

// In C++ the result is the enum itself, with a uint32_t underlying type: the same ABI as C11's
// uint32_t typedef.
static_assert(std::is_enum_v<backdrop_result>, "backdrop_result is an enum in C++");
static_assert(std::is_same_v<std::underlying_type_t<backdrop_result>, std::uint32_t>,
              "backdrop_result is a uint32_t");
static_assert(std::is_same_v<decltype(backdrop_client_wait(nullptr, nullptr, 0, nullptr, nullptr,
                                                           nullptr)),
                             backdrop_result>,
              "fallible calls return backdrop_result");
static_assert(std::is_same_v<decltype(backdrop_error_code(nullptr)), backdrop_result>,
              "an error's code is a backdrop_result");
static_assert(std::is_same_v<decltype(backdrop_task_result_count(nullptr)), std::size_t>,
              "counts stay size_t");
static_assert(std::is_same_v<backdrop_progress_callback,
                             std::uint32_t (*)(void *, const backdrop_task *)>,
              "the progress callback returns a uint32_t");
static_assert(BACKDROP_OK == 0, "success is 0");

static unsigned width_of(const backdrop_png_info *info) { return info->width; }

int main() {
    backdrop_png_info info{};
    return backdrop::version().empty() ? 1 : static_cast<int>(width_of(&info));
}
