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
# the node agent: its own containerd, runc, the reference CNI plugins, iproute2 (ip)
have containerd || need_apt+=(containerd)
[ -x /usr/sbin/runc ] || need_apt+=(runc)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
have ip || need_apt+=(iproute2)
# the service proxy programs nftables with the nft command
have nft || need_apt+=(nftables)
# test images (crates/testimages): static busybox and nginx's binary, copied into images
[ -x /bin/busybox ] || need_apt+=(busybox-static)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
# registry mirror tests: a private registry on loopback (the tests run their own
# `docker-registry serve` on a free port; the package's own service is not used) and
# htpasswd for its basic auth
have docker-registry || need_apt+=(docker-registry)
have htpasswd || need_apt+=(apache2-utils)

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
