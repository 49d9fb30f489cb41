#!/usr/bin/env bash
# Installs the Debian 12 packages epwatch needs to build, run and test. Idempotent; run as root.
# Usage: cmake/install-deps.sh [--test]   (--test adds what the test suite needs)
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libuv1-dev libmbedtls-dev libprotobuf-c-dev protobuf-c-compiler
      libcjson-dev libinih-dev libsqlite3-dev sqlite3 libpq-dev libhttp-parser-dev
      libcurl4-openssl-dev openssl iproute2 procps time curl)
if [ "${1:-}" = "--test" ]; then
    pkgs+=(libcmocka-dev clang clang-format python3 python3-cryptography
           prometheus postgresql libclang-rt-14-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (${missing[*]}); run as root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh them once (and again if the install fails on stale lists).
if [ ! -d /var/lib/apt/lists ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
    apt-get update -q
fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
