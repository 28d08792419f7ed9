/* The header compiles cleanly on its own, as C11 and as C++17 (see run.sh for the flags). */

/* A program's own header may forward-declare the info struct without including backdrop.h. */
struct backdrop_png_info;
static unsigned width_of(const struct backdrop_png_info *info);

#include <backdrop.h>

/* The result is a uint32_t-sized value in every language (a uint32_t typedef in C11, an enum
 * with a uint32_t underlying type in C23 and C++). */
_Static_assert(sizeof(backdrop_result) == sizeof(uint32_t), "backdrop_result is 32 bits");
_Static_assert(sizeof(backdrop_recovery) == sizeof(uint32_t), "backdrop_recovery is 32 bits");

static unsigned width_of(const backdrop_png_info *info) { return info->width; }

int main(void) {
    backdrop_result ok = BACKDROP_OK;
    backdrop_progress_callback callback = 0;
    /* Fallible calls return backdrop_result; the message functions take any uint32_t. */
    backdrop_result (*wait)(const backdrop_client *, backdrop_task *, uint32_t,
                            backdrop_progress_callback, void *, backdrop_error **) =
        backdrop_client_wait;
    size_t (*message)(uint32_t, char *, size_t) = backdrop_result_message;
    backdrop_png_info info = {0};
    (void)callback;
    (void)wait;
    (void)message;
    return (int)ok + (int)width_of(&info);
}
