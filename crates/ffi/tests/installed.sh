#!/usr/bin/env bash
# The installed library, as a user gets it: crates/ffi/install.sh into a fresh temporary prefix,
# then programs built from copies of the examples in a folder outside the clone, with nothing but
# that prefix — no include path, library path or CMake path into the repository:
#
#   - the installed library exports exactly the functions its installed header declares;
#   - examples/c/generate.c with `pkg-config --cflags --libs backdrop` (shared, run with no
#     LD_LIBRARY_PATH: backdrop.pc's rpath) and with
#     `pkg-config --static` and libbackdrop.a (static);
#   - examples/cmake, a C++ project, through find_package(backdrop CONFIG) and CMAKE_PREFIX_PATH,
#     against backdrop::backdrop and backdrop::backdrop_static; the package's version file
#     accepts requests of the same SONAME and refuses newer ones and other SONAMEs;
#   - each program run against the emulator, writing OUT-1.jpg and OUT-2.jpg.
#
# Called by tests/run.sh, which starts the emulators. Environment: BACKDROP_TEST_URL and
# BACKDROP_TEST_KEY (an emulator and its key), BACKDROP_TEST_FIXTURE (a transparent PNG),
# CARGO_TARGET_DIR (as for install.sh); BACKDROP_INSTALLED_TREE, to test an unpacked tree
# (dist/build's libbackdrop tarball) instead of a fresh install.sh.
#
# Usage: bash crates/ffi/tests/installed.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
ffi="$root/crates/ffi"
: "${BACKDROP_TEST_URL:?run crates/ffi/tests/run.sh (it starts the emulator)}"
: "${BACKDROP_TEST_KEY:?run crates/ffi/tests/run.sh}"
: "${BACKDROP_TEST_FIXTURE:?run crates/ffi/tests/run.sh}"

work="$(mktemp -d "${TMPDIR:-/tmp}/backdrop-installed.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
say() { printf -- '--- %s\n' "$*"; }

if [ -n "${BACKDROP_INSTALLED_TREE:-}" ]; then
  # dist/build's tarball, unpacked by the caller somewhere else than it was packed.
  say "the unpacked tree $BACKDROP_INSTALLED_TREE"
  prefix="$BACKDROP_INSTALLED_TREE"
else
  say "install.sh into a fresh prefix"
  "$ffi/install.sh" "$prefix" >/dev/null
fi
(cd "$prefix" && find . \( -type f -o -type l \) | sort | sed 's/^\.\//  /')

# Only the prefix: no inherited search paths, and the sources copied out of the clone, so that
# an include or a library could come from nowhere else.
unset CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH CMAKE_PREFIX_PATH
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
mkdir -p "$work/src" "$work/out"
cp "$ffi/examples/c/generate.c" "$work/src/"
cp -r "$ffi/examples/cmake" "$work/src/cmake"
case "$(pkg-config --cflags --libs backdrop)" in
  *"$root"*) echo "pkg-config points into the clone: $(pkg-config --cflags --libs backdrop)"; exit 1 ;;
esac

say "exported functions = the functions the installed header declares"
header="$prefix/include/backdrop/backdrop.h"
exported="$(nm -D --defined-only "$prefix/lib/libbackdrop.so" | awk '$2 == "T" && $3 ~ /^backdrop_/ { print $3 }' | sort)"
# Declarations start a line with their type; comments start with / or a space.
declared="$(grep -E '^[a-z]' "$header" | grep -oE '\bbackdrop_[a-z0-9_]+\(' | tr -d '(' | sort -u)"
if [ "$exported" != "$declared" ]; then
  echo "the library and its header disagree (< exported only, > declared only):"
  diff <(echo "$exported") <(echo "$declared") || true
  exit 1
fi
echo "$(echo "$exported" | wc -l) functions"

# run_example NAME PROGRAM: runs it against the emulator; it must write NAME-1.jpg, NAME-2.jpg.
run_example() {
  local name="$1" program="$2"
  (
    cd "$work/out"
    PICWISH_API_KEY="$BACKDROP_TEST_KEY" PICWISH_BASE_URL="$BACKDROP_TEST_URL" PICWISH_QPS=20 \
      "$program" "$BACKDROP_TEST_FIXTURE" "a marble countertop" "$name" 2>"$work/$name.log" ||
      { cat "$work/$name.log"; exit 1; }
  )
  for n in 1 2; do
    head -c 3 "$work/out/$name-$n.jpg" | od -An -tx1 | grep -q 'ff d8 ff' ||
      { echo "$name-$n.jpg is not a JPEG"; cat "$work/$name.log"; exit 1; }
  done
  echo "$name: $name-1.jpg, $name-2.jpg"
}

strict_c=(-std=c11 -Wall -Wextra -Werror -Wpedantic)
read -r -a cflags <<<"$(pkg-config --cflags backdrop)"
read -r -a libs <<<"$(pkg-config --libs backdrop)"
read -r -a static_libs <<<"$(pkg-config --static --libs-only-l backdrop | sed 's/-lbackdrop//')"

say "C example through pkg-config: shared"
cc "${strict_c[@]}" "${cflags[@]}" "$work/src/generate.c" "${libs[@]}" -o "$work/generate_shared"
readelf -d "$work/generate_shared" | grep -q "NEEDED.*\[$(readelf -d "$prefix/lib/libbackdrop.so" |
  sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')\]" || { echo "generate_shared does not need the SONAME"; exit 1; }
# backdrop.pc's rpath: the program finds the library with no LD_LIBRARY_PATH.
readelf -d "$work/generate_shared" | grep -q "R\(UN\)\?PATH.*$prefix" ||
  { echo "generate_shared has no rpath to $prefix/lib:"; readelf -d "$work/generate_shared" | grep -i path; exit 1; }
run_example c-shared "$work/generate_shared"

say "C example through pkg-config: static"
cc "${strict_c[@]}" "${cflags[@]}" "$work/src/generate.c" "$prefix/lib/libbackdrop.a" \
  "${static_libs[@]}" -o "$work/generate_static"
if readelf -d "$work/generate_static" | grep -q libbackdrop; then
  echo "generate_static must not need libbackdrop.so"
  exit 1
fi
run_example c-static "$work/generate_static"

# cmake_example NAME ARGS...: configures and builds the copied CMake project against the prefix.
cmake_example() {
  local name="$1"
  shift
  cmake -S "$work/src/cmake" -B "$work/$name" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "$@" >"$work/$name.cmake.log" ||
    { cat "$work/$name.cmake.log"; exit 1; }
  grep -F -- "-- libbackdrop " "$work/$name.cmake.log"
  cmake --build "$work/$name" >"$work/$name.build.log" || { cat "$work/$name.build.log"; exit 1; }
  if grep -qF "$root" "$work/$name/compile_commands.json"; then
    echo "the $name build refers to the clone:"
    cat "$work/$name/compile_commands.json"
    exit 1
  fi
}

say "C++ CMake example through find_package(backdrop): backdrop::backdrop"
cmake_example cmake-shared
run_example cpp-shared "$work/cmake-shared/backdrop-generate-cpp"

say "C++ CMake example through find_package(backdrop): backdrop::backdrop_static"
cmake_example cmake-static -DBACKDROP_STATIC=ON
if readelf -d "$work/cmake-static/backdrop-generate-cpp" | grep -q libbackdrop; then
  echo "the static C++ example must not need libbackdrop.so"
  exit 1
fi
run_example cpp-static "$work/cmake-static/backdrop-generate-cpp"

say "the CMake package's version file"
version="$(pkg-config --modversion backdrop)"
# find_version REQUEST: prints found or missing for find_package(backdrop REQUEST CONFIG).
find_version() {
  mkdir -p "$work/find"
  cat >"$work/find/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(find_backdrop C)
find_package(backdrop $1 CONFIG QUIET)
if(backdrop_FOUND)
  message(STATUS "found \${backdrop_VERSION}")
else()
  message(STATUS "missing")
endif()
CMAKE
  rm -rf "$work/find/build"
  cmake -S "$work/find" -B "$work/find/build" -DCMAKE_PREFIX_PATH="$prefix" 2>&1 |
    sed -n 's/^-- \(found .*\|missing\)$/\1/p'
}
IFS=. read -r major minor patch <<<"$version"
# The same SONAME and not newer: accepted.
accepted=("$version")
if [ "$major" -gt 0 ]; then accepted+=("$major"); else accepted+=("$major.$minor"); fi
# Newer than installed, or older with another SONAME: refused.
refused=("$major.$minor.$((patch + 1))" "$((major + 1)).0")
if [ "$major" -gt 0 ]; then
  refused+=("$((major - 1)).$minor")
elif [ "$minor" -gt 0 ]; then
  refused+=("0.$((minor - 1)).$patch")
fi
for request in "${accepted[@]}"; do
  [ "$(find_version "$request")" = "found $version" ] || { echo "find_package($request) failed"; exit 1; }
done
for request in "${refused[@]}"; do
  [ "$(find_version "$request")" = "missing" ] || { echo "find_package($request) accepted $version"; exit 1; }
done
echo "find_package accepts ${accepted[*]} and refuses ${refused[*]} (installed: $version)"

say "ok: the installed tree alone builds and runs C (pkg-config) and C++ (CMake) programs"
