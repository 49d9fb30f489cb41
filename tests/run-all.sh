#!/usr/bin/env bash
# The one test command (README Quick start, .ci/run): installs what is needed, builds every
# configuration and runs every test. Exits non-zero on the first failure.
#   tests/run-all.sh            everything
#   EPW_SKIP="asan tsan windows" tests/run-all.sh   skip some stages (local iteration only)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
skip=" ${EPW_SKIP:-} "

stage() { printf '\n==== %s ====\n' "$*"; }
want() { [[ "$skip" != *" $1 "* ]]; }

stage "dependencies"
bash cmake/install-deps.sh --test

if want format; then
    stage "clang-format check"
    git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
fi

build_and_test() { # name cmake-args... ; CTEST_ARGS selects tests
    local name=$1; shift
    stage "build: $name"
    cmake -S . -B "build-ci-$name" -DEPW_WERROR=ON "$@" >"build-ci-$name.configure.log" 2>&1 ||
        { cat "build-ci-$name.configure.log"; return 1; }
    cmake --build "build-ci-$name" -j"$jobs"
    stage "test: $name"
    # shellcheck disable=SC2086
    (cd "build-ci-$name" && ctest --output-on-failure -j"$jobs" --timeout 600 ${CTEST_ARGS:-})
}

build_and_test release -DCMAKE_BUILD_TYPE=RelWithDebInfo

if want asan; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        build_and_test asan -DCMAKE_BUILD_TYPE=Debug -DEPW_SANITIZE=address,undefined \
        -DCMAKE_C_COMPILER=clang
fi

if want tsan; then
    # The threaded parts: the store's writer thread (SQLite and PostgreSQL), the collector's
    # ingest path, the agent's uplink and sampler threads.
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        CTEST_ARGS="-R ^(store|store_pg|store_pg_server_start|store_pg_server_stop|ingest|uplink|sampler_linux|api|sinks)$" \
        build_and_test tsan -DCMAKE_BUILD_TYPE=Debug -DEPW_SANITIZE=thread -DCMAKE_C_COMPILER=clang
fi

if want fuzz; then
    stage "fuzz smoke (libFuzzer, bounded)"
    cmake -S . -B build-ci-fuzz -DEPW_FUZZ=ON -DCMAKE_C_COMPILER=clang -DBUILD_TESTING=ON \
        -DCMAKE_BUILD_TYPE=Debug >build-ci-fuzz.configure.log 2>&1 ||
        { cat build-ci-fuzz.configure.log; exit 1; }
    cmake --build build-ci-fuzz -j"$jobs" --target epw_fuzzers
    (cd build-ci-fuzz && ctest --output-on-failure -L fuzz)
fi

if want windows; then
    # mingw-w64 cross build of the agent and its portable tests, run under Wine (issue 5).
    stage "windows: cross-build, tests under Wine"
    bash agent/windows/cross-build.sh build-ci-windows
    stage "windows: a second run reuses the cached libraries"
    EPW_WIN_SKIP_TESTS=1 bash agent/windows/cross-build.sh build-ci-windows 2>&1 |
        tee build-ci-windows.rerun.log | tail -n 5
    grep -q "reusing cached Windows dependencies" build-ci-windows.rerun.log ||
        { echo "FAIL: the second cross-build did not reuse the cached libraries" >&2; exit 1; }
fi

stage "all stages passed"
