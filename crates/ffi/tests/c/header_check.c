/* The header compiles cleanly on its own, as C11 and as C++17 (see run.sh for the flags). */
#include <backdrop.h>

int main(void) {
    backdrop_result ok = BACKDROP_OK;
    backdrop_progress_callback callback = 0;
    (void)callback;
    return (int)ok;
}
