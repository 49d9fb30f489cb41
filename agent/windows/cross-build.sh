#!/usr/bin/env bash
# cross-build.sh BUILD_DIR: builds the Windows agent (epwatch-agent.exe) and the portable unit tests
# with mingw-w64 on Debian 12 and runs the tests under Wine through CTest. Run as root on a fresh
# machine: installs the toolchain, builds the dependencies from Debian source packages into a cache
# keyed on their versions (reused by later runs), then configures, builds and tests this project.
#   EPW_WIN_DEPS_CACHE   cache root (default /var/cache/epwatch-win-deps)
#   EPW_WIN_SKIP_TESTS=1 build only
#   EPW_WIN_JOBS         parallel jobs (default: nproc, at most 2)
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(realpath -m "$1")
cache_root=${EPW_WIN_DEPS_CACHE:-/var/cache/epwatch-win-deps}
toolchain=$root/cmake/toolchain-mingw64.cmake
jobs=${EPW_WIN_JOBS:-$(nproc 2>/dev/null || echo 2)}
((jobs > 2)) && jobs=2
# Bump when the way the dependencies are built changes, so old caches are not reused.
recipe=1

t0=$SECONDS
step_t=$SECONDS
step() {
    printf '[cross-build %4ds] %s\n' "$((SECONDS - t0))" "$*"
    step_t=$SECONDS
}
done_step() { printf '[cross-build %4ds]   done in %ds\n' "$((SECONDS - t0))" "$((SECONDS - step_t))"; }
die() {
    echo "cross-build: $*" >&2
    exit 1
}

export DEBIAN_FRONTEND=noninteractive

# ---- 1. toolchain -------------------------------------------------------------------------------
# Only the win32 thread model: the posix one makes every binary need libwinpthread-1.dll.
pkgs=(gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 wine wine64 protobuf-c-compiler msitools
    cmake make pkg-config dpkg-dev xz-utils python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    done_step
else
    step "toolchain already installed"
fi

srcver() { # newest version of a source package
    apt-cache showsrc "$1" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n1
}

# ---- 2. deb-src ---------------------------------------------------------------------------------
# A separate sources file, so the system's own stays as it is.
srcfile=/etc/apt/sources.list.d/epwatch-deb-src.sources
if [[ -z $(srcver libuv1) ]]; then
    step "enabling deb-src in $srcfile"
    . /etc/os-release
    cat >"$srcfile" <<EOF
# Added by epwatch agent/windows/cross-build.sh: Debian source packages for the Windows build.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${VERSION_CODENAME} ${VERSION_CODENAME}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: ${VERSION_CODENAME}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
    [[ -n $(srcver libuv1) ]] || die "no deb-src for libuv1"
    done_step
fi

# ---- 3. dependencies (cached) -------------------------------------------------------------------
srcpkgs=(libuv1 mbedtls protobuf-c cmocka cjson libinih)
key_text="recipe=$recipe gcc=$(x86_64-w64-mingw32-gcc-win32 -dumpfullversion)"
for p in "${srcpkgs[@]}"; do
    v=$(srcver "$p")
    [[ -n $v ]] || die "no source package $p"
    key_text+=" $p=$v"
done
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-16)
deps=$cache_root/$key

build_deps() {
    local work staging
    mkdir -p "$cache_root"
    work=$(mktemp -d "$cache_root/.work-XXXXXX")
    staging=$work/prefix
    mkdir -p "$staging/include" "$staging/lib" "$work/src"
    trap 'rm -rf "$work"' RETURN

    step "fetching Debian source packages: ${srcpkgs[*]}"
    local p inih_from=debian
    for p in "${srcpkgs[@]}"; do
        # One package at a time: apt-get source extracts nothing when any download fails.
        if ! (cd "$work/src" && apt-get source -qq "$p=$(srcver "$p")" >"$work/src/$p.log" 2>&1); then
            if [[ $p == libinih ]]; then
                inih_from=standin
                echo "cross-build: libinih source unavailable ($(grep -m1 -o '[0-9]\{3\} [A-Za-z ]*' \
                    "$work/src/$p.log" || echo 'download failed')): using agent/windows/inih_standin.c"
                continue
            fi
            cat "$work/src/$p.log" >&2
            die "apt-get source $p failed"
        fi
    done
    done_step
    local s=$work/src
    local cm=(-DCMAKE_TOOLCHAIN_FILE="$toolchain" -DCMAKE_BUILD_TYPE=Release
        -DCMAKE_INSTALL_PREFIX="$staging")

    step "libuv (static target uv_a)"
    cmake -S "$s"/libuv1-*/ -B "$work/b-uv" "${cm[@]}" -DLIBUV_BUILD_TESTS=OFF \
        -DLIBUV_BUILD_BENCH=OFF >"$work/uv.log" 2>&1 || { cat "$work/uv.log"; die "libuv configure"; }
    cmake --build "$work/b-uv" --target uv_a -j"$jobs" >>"$work/uv.log" 2>&1 ||
        { tail -40 "$work/uv.log"; die "libuv build"; }
    cp "$work/b-uv/libuv_a.a" "$staging/lib/"
    cp -r "$s"/libuv1-*/include/. "$staging/include/"
    done_step

    step "mbedTLS (static)"
    cmake -S "$s"/mbedtls-*/ -B "$work/b-mbedtls" "${cm[@]}" -DMBEDTLS_FATAL_WARNINGS=OFF \
        -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
        -DUSE_STATIC_MBEDTLS_LIBRARY=ON >"$work/mbedtls.log" 2>&1 ||
        { cat "$work/mbedtls.log"; die "mbedtls configure"; }
    cmake --build "$work/b-mbedtls" --target install -j"$jobs" >>"$work/mbedtls.log" 2>&1 ||
        { tail -40 "$work/mbedtls.log"; die "mbedtls build"; }
    done_step

    step "cmocka (static)"
    cmake -S "$s"/cmocka-*/ -B "$work/b-cmocka" "${cm[@]}" -DWITH_STATIC_LIB=ON \
        -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF >"$work/cmocka.log" 2>&1 ||
        { cat "$work/cmocka.log"; die "cmocka configure"; }
    cmake --build "$work/b-cmocka" --target cmocka-static -j"$jobs" >>"$work/cmocka.log" 2>&1 ||
        { tail -40 "$work/cmocka.log"; die "cmocka build"; }
    find "$work/b-cmocka" -name 'libcmocka-static.a' -exec cp {} "$staging/lib/" \;
    cp "$s"/cmocka-*/include/cmocka.h "$staging/include/"
    done_step

    # Single-file libraries: their own builds need a C++ cross compiler (protobuf-c) or meson.
    local cc=(x86_64-w64-mingw32-gcc-win32 -O2 -g -std=gnu11)
    step "protobuf-c runtime, cJSON, inih ($inih_from)"
    mkdir -p "$staging/include/protobuf-c" "$staging/include/cjson" "$work/o"
    "${cc[@]}" -c "$s"/protobuf-c-*/protobuf-c/protobuf-c.c -I"$s"/protobuf-c-*/ \
        -o "$work/o/protobuf-c.o"
    x86_64-w64-mingw32-ar rcs "$staging/lib/libprotobuf-c.a" "$work/o/protobuf-c.o"
    cp "$s"/protobuf-c-*/protobuf-c/protobuf-c.h "$staging/include/protobuf-c/"
    # CJSON_HIDE_SYMBOLS: a static library; otherwise the .exe would export cJSON's API.
    "${cc[@]}" -DCJSON_HIDE_SYMBOLS -c "$s"/cjson-*/cJSON.c -o "$work/o/cJSON.o"
    x86_64-w64-mingw32-ar rcs "$staging/lib/libcjson.a" "$work/o/cJSON.o"
    cp "$s"/cjson-*/cJSON.h "$staging/include/cjson/"
    if [[ $inih_from == debian ]]; then
        "${cc[@]}" -c "$s"/libinih-*/ini.c -I"$s"/libinih-*/ -o "$work/o/ini.o"
        cp "$s"/libinih-*/ini.h "$staging/include/"
    else
        # The header comes from Debian's binary package (same version), the code from the project.
        (cd "$work/src" && apt-get download -qq "libinih-dev=$(srcver libinih)" >/dev/null 2>&1) ||
            die "apt-get download libinih-dev failed"
        dpkg-deb -x "$work"/src/libinih-dev_*.deb "$work/inih-dev"
        cp "$work/inih-dev/usr/include/ini.h" "$staging/include/"
        "${cc[@]}" -Wall -Wextra -c "$here/inih_standin.c" -I"$staging/include" -o "$work/o/ini.o"
    fi
    x86_64-w64-mingw32-ar rcs "$staging/lib/libinih.a" "$work/o/ini.o"
    done_step

    printf '%s\ninih=%s\n' "$key_text" "$inih_from" >"$staging/VERSIONS"
    rm -rf "$deps"
    mv "$staging" "$deps"
}

if [[ -f $deps/VERSIONS ]]; then
    step "reusing cached Windows dependencies in $deps ($(tr '\n' ' ' <"$deps/VERSIONS"))"
else
    step "building Windows dependencies into $deps"
    build_deps
fi

# ---- 4. the project -----------------------------------------------------------------------------
step "configuring $build"
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DEPW_DEPS_PREFIX="$deps" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEPW_WERROR=ON -DBUILD_TESTING=ON >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log"; die "configure failed"; }
step "building"
cmake --build "$build" -j"$jobs"
[[ -f $build/agent/epwatch-agent.exe ]] || die "no epwatch-agent.exe"
cp "$build/agent/epwatch-agent.exe" "$build/epwatch-agent.exe"
done_step

# ---- 5. MSI -------------------------------------------------------------------------------------
# The installer (wixl -a x64, ServiceInstall/ServiceControl) is built and tested here once it
# exists: agent/windows/msi.sh BUILD_DIR, run after the build and before the Wine tests.
if [[ -x $here/msi.sh ]]; then
    step "MSI"
    "$here/msi.sh" "$build"
fi

if [[ ${EPW_WIN_SKIP_TESTS:-0} == 1 ]]; then
    step "tests skipped (EPW_WIN_SKIP_TESTS=1); $build/epwatch-agent.exe"
    exit 0
fi

# ---- 6. tests under Wine ------------------------------------------------------------------------
export WINEPREFIX=$build/wineprefix WINEARCH=win64 WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
if [[ ! -f $WINEPREFIX/system.reg ]]; then
    step "creating Wine prefix $WINEPREFIX"
    wineboot -i </dev/null >/dev/null 2>&1 || die "wineboot -i failed"
    wineserver -w
    done_step
fi
# One persistent server for the whole test run: a cold wine start costs seconds per test.
# Its stdio and that of the services the first Wine program starts (services.exe, winedevice.exe)
# must not be CTest's pipes, or the first test waits for them until its timeout.
wineserver -p </dev/null >/dev/null 2>&1
wine cmd.exe /c exit </dev/null >/dev/null 2>&1 || die "wine does not start"
stop_wine() { wineserver -k 2>/dev/null || true; }
trap stop_wine EXIT

step "tests under Wine"
(cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 300)
done_step
step "done: $build/epwatch-agent.exe (total $((SECONDS - t0))s)"
