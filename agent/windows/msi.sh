#!/usr/bin/env bash
# msi.sh BUILD_DIR: builds BUILD_DIR/epwatch-agent.msi from BUILD_DIR/epwatch-agent.exe with wixl
# (Debian package wixl, installed here when missing). Called by cross-build.sh after the build.
#   EPW_MSI_VERSION  product version (default: the project version from BUILD_DIR/CMakeCache.txt);
#                    the upgrade test builds a second, higher one
#   EPW_MSI_OUT      output file (default BUILD_DIR/epwatch-agent.msi)
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "$1")
exe=$build/epwatch-agent.exe
[[ -f $exe ]] || { echo "msi.sh: $exe not found" >&2; exit 1; }

if ! command -v wixl >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wixl >/dev/null
fi

version=${EPW_MSI_VERSION:-$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt")}
# MSI product versions are three numeric fields, each field limited (255.255.65535).
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "msi.sh: bad version '$version'" >&2; exit 1; }
out=${EPW_MSI_OUT:-$build/epwatch-agent.msi}

# wixl resolves File/@Source relative to the .wxs (absolute paths fail): build in a scratch
# directory holding both. -a x64: wixl ignores Package/@Platform.
work=$(mktemp -d "$build/.msi-XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/epwatch-agent.wxs" "$exe" "$work/"
(cd "$work" && wixl -a x64 -D "Version=$version" -D "AgentExe=epwatch-agent.exe" \
    -o epwatch-agent.msi epwatch-agent.wxs)
mv "$work/epwatch-agent.msi" "$out"
echo "msi.sh: $out (version $version)"
