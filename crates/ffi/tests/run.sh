#!/usr/bin/env bash
# The test suites of libbackdrop, from a fresh clone: the Rust tests of the crate (the header
# check among them), then the library installed into a prefix outside the clone (install.sh) and used
# through pkg-config by real compilers, against emulators started here on 127.0.0.1:
#
#   - the header compiles cleanly as C11 and as C++17 (-Wall -Wextra -Werror -Wpedantic);
#   - C: tests/c/test_backdrop.c with AddressSanitizer + UBSan, then under valgrind
#     (--leak-check=full --error-exitcode=1), then the panic boundary against a build of the
#     library with the test-hooks feature;
#   - C++: GoogleTest through CMake (Ninja) and ctest;
#   - the installed tree alone (tests/installed.sh): a fresh prefix from install.sh, its exports
#     against its header, the C example through pkg-config (shared and static) and the C++ CMake
#     example through find_package(backdrop) (shared and static), run against an emulator;
#   - Go: go vet, go test -race, and the Go example.
#   - with BACKDROP_LIB_TARBALL (tests/run sets it to dist/build's libbackdrop tarball): the
#     tarball unpacked elsewhere, tests/installed.sh against it, and the Go example built from the
#     tarball's Go package with nothing but PKG_CONFIG_PATH.
#
# Installs the system packages it needs when they are missing (valgrind, libgtest-dev, cmake,
# ninja-build, pkg-config, a C/C++ compiler). Exits non-zero on any failure.
#
# Usage: bash crates/ffi/tests/run.sh        (from anywhere)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
ffi="$root/crates/ffi"
started=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$1" "$(($(date +%s) - started))"; }

work="$(mktemp -d "${TMPDIR:-/tmp}/backdrop-ffi-tests.XXXXXX")"
emulator_pids=()
cleanup() {
  local status=$?
  for pid in "${emulator_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${emulator_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
  if [ "$status" -ne 0 ]; then
    echo "crates/ffi/tests/run.sh: FAILED (exit $status) after $(($(date +%s) - started))s" >&2
  fi
}
trap cleanup EXIT

# ----------------------------------------------------------------------------------------------
step "system packages"
missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ! -f /usr/include/gtest/gtest.h ] && [ ! -d /usr/src/googletest ]; then
  missing+=(libgtest-dev)
fi
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || missing+=(golang-go)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
# The Go package needs Go 1.24 (runtime.AddCleanup); Debian's golang-go may be older.
go_minor="$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')"
if [ -z "$go_minor" ] || [ "$go_minor" -lt 24 ]; then
  echo "Go 1.24 or newer is needed for crates/ffi/go (found $(go env GOVERSION))"
  exit 1
fi
cc --version | head -n 1
c++ --version | head -n 1
valgrind --version
cmake --version | head -n 1
go version

# ----------------------------------------------------------------------------------------------
step "cargo test -p backdrop-ffi (unit tests, panic-boundary coverage, header = cbindgen output)"
cargo test -p backdrop-ffi

step "build: the emulator, and the library with the test-hooks feature (debug)"
cargo build -p backdrop-emulator -p backdrop-ffi --features backdrop-ffi/test-hooks
mkdir -p "$work/hooks"
hooks_soname="$(readelf -d "$CARGO_TARGET_DIR/debug/libbackdrop.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
cp "$CARGO_TARGET_DIR/debug/libbackdrop.so" "$work/hooks/$hooks_soname"
emulator="$CARGO_TARGET_DIR/debug/backdrop-emulator"

step "install the library (release) into a prefix outside the clone"
# A stable prefix: Go's build cache keeps the -L path pkg-config gave it, so a fresh temporary
# prefix per run would leave cached links pointing at a deleted folder.
prefix="$CARGO_TARGET_DIR/backdrop-test-prefix"
rm -rf "$prefix"
"$ffi/install.sh" "$prefix"
# The caller's PKG_CONFIG_PATH, for tests/installed.sh: its install.sh must build in the
# environment the install above saw, or build scripts that watch the variable (aws-lc-sys's)
# would run again.
if [ -n "${PKG_CONFIG_PATH+set}" ]; then
  caller_pkg_config_path=(PKG_CONFIG_PATH="$PKG_CONFIG_PATH")
else
  caller_pkg_config_path=(-u PKG_CONFIG_PATH)
fi
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Go keys its build cache on CGO_* variables but not on pkg-config's answer: name the prefix here
# so a cached link never points at another prefix.
export CGO_LDFLAGS="-L$prefix/lib" CGO_CFLAGS="-I$prefix/include"
version="$(pkg-config --modversion backdrop)"
soname="$(readelf -d "$prefix/lib/libbackdrop.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
echo "backdrop $version, SONAME $soname"
# cargo-c's rule (crates/ffi/README.md, "ABI version and SONAME"): the major version from 1.0 on,
# 0.minor before, 0.0.patch before 0.1.
IFS=. read -r v_major v_minor v_patch <<<"$version"
if [ "$v_major" -gt 0 ]; then expected="$v_major"
elif [ "$v_minor" -gt 0 ]; then expected="0.$v_minor"
else expected="0.0.$v_patch"; fi
[ "$soname" = "libbackdrop.so.$expected" ] || { echo "SONAME $soname, expected libbackdrop.so.$expected"; exit 1; }
[ "$(readlink "$prefix/lib/$soname")" = "libbackdrop.so.$version" ] ||
  { echo "$prefix/lib/$soname does not link to libbackdrop.so.$version"; exit 1; }
[ "$hooks_soname" = "$soname" ] || { echo "the debug build's SONAME is $hooks_soname"; exit 1; }
if nm -D --defined-only "$prefix/lib/libbackdrop.so" | grep -q backdrop_test_panic; then
  echo "the installed library must not export the test hooks"
  exit 1
fi

# ----------------------------------------------------------------------------------------------
step "emulators on 127.0.0.1"
key="ffi-test-key"
# start_emulator NAME ARGS...: starts one, waits for its address, exports it as NAME.
start_emulator() {
  local name="$1"
  shift
  local log="$work/emulator-$name.log"
  # Created here, not by the background job's redirection: the loop below may read it first.
  : >"$log"
  "$emulator" --bind 127.0.0.1:0 --key "$key" --seed 11 "$@" >"$log" 2>&1 &
  emulator_pids+=("$!")
  local url=""
  for _ in $(seq 1 300); do
    url="$(sed -n 's/^backdrop-emulator listening on \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$log")"
    [ -n "$url" ] && break
    kill -0 "${emulator_pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "emulator $name did not start:"
    cat "$log"
    exit 1
  fi
  export "$name=$url"
  echo "$name=$url ($*)"
}
quick=(--queue-ms 50 --prepare-ms 50 --processing-ms 200 --qps 20)
start_emulator BACKDROP_TEST_URL "${quick[@]}"
start_emulator BACKDROP_TEST_URL_EXPIRED "${quick[@]}" --expire-results
start_emulator BACKDROP_TEST_URL_NEVER "${quick[@]}" --never-finish-rate 1
start_emulator BACKDROP_TEST_URL_500 "${quick[@]}" --error-500-rate 1
start_emulator BACKDROP_TEST_URL_STRICT --queue-ms 50 --prepare-ms 50 --processing-ms 200 --qps 1
start_emulator BACKDROP_TEST_URL_DROP "${quick[@]}" --drop-rate 1
start_emulator BACKDROP_TEST_URL_504 "${quick[@]}" --lost-answer-rate 1 --lost-answer-as gateway-timeout
start_emulator BACKDROP_TEST_URL_GARBLED "${quick[@]}" --lost-answer-rate 1 --lost-answer-as garbled
export BACKDROP_TEST_KEY="$key"
export BACKDROP_TEST_FIXTURE="$root/tests/fixtures/bottle.png"
export BACKDROP_TEST_VERSION="$version"
export BACKDROP_TEST_OUT="$work/out"
export BACKDROP_TEST_PNG_FIXTURES="$work/png-fixtures"
cargo run --quiet -p backdrop-tests --bin write-png-fixtures "$BACKDROP_TEST_PNG_FIXTURES"
mkdir -p "$BACKDROP_TEST_OUT"

# ----------------------------------------------------------------------------------------------
step "the header compiles cleanly as C11 and as C++17"
strict_c=(-std=c11 -Wall -Wextra -Werror -Wpedantic)
strict_cxx=(-std=c++17 -Wall -Wextra -Werror -Wpedantic)
read -r -a backdrop_cflags <<<"$(pkg-config --cflags backdrop)"
read -r -a backdrop_libs <<<"$(pkg-config --libs backdrop)"
cc "${strict_c[@]}" "${backdrop_cflags[@]}" "$ffi/tests/c/header_check.c" "${backdrop_libs[@]}" \
  -o "$work/header_check_c"
c++ "${strict_cxx[@]}" "${backdrop_cflags[@]}" "$ffi/tests/c/header_check.cpp" \
  "${backdrop_libs[@]}" -o "$work/header_check_cpp"
"$work/header_check_c"
"$work/header_check_cpp"
echo "ok"

step "C: AddressSanitizer + UndefinedBehaviorSanitizer"
cc "${strict_c[@]}" -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
  -fno-sanitize-recover=all "${backdrop_cflags[@]}" "$ffi/tests/c/test_backdrop.c" \
  "${backdrop_libs[@]}" -pthread -o "$work/test_backdrop_asan"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  "$work/test_backdrop_asan"

step "C: valgrind --leak-check=full"
cc "${strict_c[@]}" -g -O0 "${backdrop_cflags[@]}" "$ffi/tests/c/test_backdrop.c" \
  "${backdrop_libs[@]}" -pthread -o "$work/test_backdrop_valgrind"
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible \
  --show-leak-kinds=definite,possible --track-origins=yes --quiet \
  "$work/test_backdrop_valgrind"

step "C: the panic boundary (library built with the test-hooks feature)"
echo "(the panic message printed below is the deliberate one; the test checks it was caught)"
LD_LIBRARY_PATH="$work/hooks:$LD_LIBRARY_PATH" RUST_BACKTRACE=0 \
  ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" UBSAN_OPTIONS="halt_on_error=1" \
  "$work/test_backdrop_asan" panic_boundary

# ----------------------------------------------------------------------------------------------
step "C++: GoogleTest through CMake and ctest"
cmake -S "$ffi/tests/cpp" -B "$work/cpp" -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$work/cpp"
ctest --test-dir "$work/cpp" --output-on-failure

# ----------------------------------------------------------------------------------------------
step "the installed tree alone: C through pkg-config, C++ through find_package (tests/installed.sh)"
env "${caller_pkg_config_path[@]}" bash "$ffi/tests/installed.sh"

# ----------------------------------------------------------------------------------------------
step "Go: go vet, go test -race, the example"
(
  cd "$ffi/go"
  export CGO_ENABLED=1 GOTOOLCHAIN=local
  go vet ./...
  go test -race -count=1 ./...
  go build -o "$work/backdrop-generate" ./cmd/backdrop-generate
)
(
  cd "$work/out"
  PICWISH_API_KEY="$key" PICWISH_BASE_URL="$BACKDROP_TEST_URL" PICWISH_QPS=20 \
    "$work/backdrop-generate" "$BACKDROP_TEST_FIXTURE" "a marble countertop" go
)
for n in 1 2; do
  head -c 3 "$work/out/go-$n.jpg" | od -An -tx1 | grep -q 'ff d8 ff' ||
    { echo "go-$n.jpg is not a JPEG"; exit 1; }
done

# ----------------------------------------------------------------------------------------------
if [ -n "${BACKDROP_LIB_TARBALL:-}" ]; then
  step "dist/build's tarball, unpacked elsewhere: C, C++ and Go with nothing but PKG_CONFIG_PATH"
  # A stable folder (Go's build cache keeps the paths pkg-config gave it), emptied each run.
  unpacked="$CARGO_TARGET_DIR/backdrop-tarball-check"
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  tar -C "$unpacked" -xzf "$BACKDROP_LIB_TARBALL"
  tree="$(find "$unpacked" -mindepth 1 -maxdepth 1 -type d)"
  [ -f "$tree/lib/pkgconfig/backdrop.pc" ] || { echo "no lib/pkgconfig/backdrop.pc in $BACKDROP_LIB_TARBALL"; exit 1; }
  clean_env=(-u LD_LIBRARY_PATH -u CGO_LDFLAGS -u CGO_CFLAGS -u CMAKE_PREFIX_PATH
             PKG_CONFIG_PATH="$tree/lib/pkgconfig")
  env "${clean_env[@]}" BACKDROP_INSTALLED_TREE="$tree" bash "$ffi/tests/installed.sh"
  (
    cd "$tree/share/backdrop/go"
    env "${clean_env[@]}" CGO_ENABLED=1 GOTOOLCHAIN=local \
      go build -o "$work/backdrop-generate-tarball" ./cmd/backdrop-generate
  )
  (
    cd "$work/out"
    env "${clean_env[@]}" PICWISH_API_KEY="$key" PICWISH_BASE_URL="$BACKDROP_TEST_URL" PICWISH_QPS=20 \
      "$work/backdrop-generate-tarball" "$BACKDROP_TEST_FIXTURE" "a marble countertop" go-tarball
  )
  for n in 1 2; do
    head -c 3 "$work/out/go-tarball-$n.jpg" | od -An -tx1 | grep -q 'ff d8 ff' ||
      { echo "go-tarball-$n.jpg is not a JPEG"; exit 1; }
  done
  echo "the Go example, built from the tarball's package against its library: go-tarball-1.jpg, go-tarball-2.jpg"
fi

step "done: every libbackdrop suite passed"
