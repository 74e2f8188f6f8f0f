#!/usr/bin/env bash
# quickstart: on a fresh Debian 12 machine, build gib, the mini stage3 the tests use, the
# example image examples/greet/gib.yaml, and run it with podman. Run as root (it installs
# Debian packages); the build itself runs in gib's rootless sandbox, never as the host's root.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends ca-certificates uidmap mmdebstrap \
		python3 python3-venv python3-pip zstd xz-utils podman runc >/dev/null
fi

echo "==> building gib"
cargo build --release --locked -q
gib=$top/target/release/gib

stage3=target/gib-fixtures/mini-stage3.tar.zst
if [ ! -e "$stage3" ]; then
	echo "==> building the mini stage3 (once; kept in $stage3)"
	mkdir -p target/gib-fixtures
	tests/fixtures/mini-stage3/build.sh "$stage3"
fi

echo "==> gib build"
"$gib" build -f examples/greet/gib.yaml --cache-dir target/quickstart-cache \
	--archive target/greet.tar

echo "==> podman load + run"
store=$top/target/quickstart-podman
podman=(podman --root "$store/root" --runroot "$store/run" --storage-driver vfs
	--runtime /usr/sbin/runc --cgroup-manager cgroupfs)
"${podman[@]}" load -i target/greet.tar
"${podman[@]}" run --rm --ulimit nofile=20000:20000 --ulimit nproc=1024:1024 \
	--network none greet:latest
