#!/usr/bin/env bash
# Installs what AsyncSpawn needs on Debian/Ubuntu when it is missing:
# libseccomp-dev and pkg-config (to link libseccomp), python3 (examples and tests),
# gcc (tests compile tiny C probes), procps (ps, pgrep), stress-ng (hostile children).
set -euo pipefail
missing=()
pkg-config --exists libseccomp 2>/dev/null || missing+=(libseccomp-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v python3 >/dev/null || missing+=(python3)
command -v gcc >/dev/null || missing+=(gcc)
command -v pgrep >/dev/null || missing+=(procps)
command -v stress-ng >/dev/null || missing+=(stress-ng)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v swift >/dev/null; then
    echo "setup: Swift 6 is required (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
