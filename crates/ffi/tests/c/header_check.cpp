// backdrop.h and backdrop.hpp compile cleanly as C++17 (see run.sh for the flags).
#include <backdrop.h>
#include <backdrop.hpp>

int main() {
    static_assert(BACKDROP_OK == 0, "success is 0");
    return backdrop::version().empty() ? 1 : 0;
}
