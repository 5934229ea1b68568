#!/usr/bin/env bash
# Installs the host packages rkube and its tests need, if they are missing.
# Idempotent: packages already present are left alone. Needs root (apt-get).
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

have kubectl || need_apt+=(kubectl)
have protoc || need_apt+=(protobuf-compiler)
have cc || need_apt+=(gcc)
have sqlite3 || need_apt+=(sqlite3)

if ((${#need_apt[@]})); then
  echo "installing host packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}"
fi

if ! have cargo; then
  echo "cargo is missing: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
