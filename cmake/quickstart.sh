#!/usr/bin/env bash
# Quick start: installs what is needed, builds epwatch, and shows this host's ephemeral-port usage.
# (Grows with the product: once the collector lands it also starts a collector and a local agent.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
./build/agent/epwatch-agent --once
