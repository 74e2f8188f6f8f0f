#!/usr/bin/env bash
# quickstart: on a fresh Debian 12 machine, build gib, the mini stage3 the tests use, the
# example image examples/greet/gib.yaml, and run it with podman. Run as root to install the
# Debian packages it needs; the image build itself runs in gib's rootless sandbox, never as
# the host's root.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
started=$SECONDS

elapsed() {
	printf '%dm%02ds' $(( (SECONDS - started) / 60 )) $(( (SECONDS - started) % 60 ))
}

phase() {
	echo
	echo "==> [$1/5] at $(elapsed): $2"
}

# gib needs the Rust of Cargo.toml's rust-version; Debian 12's own rustc (1.63) is too old.
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
have_rust=$(rustc --version 2>/dev/null | cut -d' ' -f2 || true)
if [ -z "$have_rust" ] || [ "$(printf '%s\n%s\n' "$need_rust" "$have_rust" | sort -V | head -n1)" != "$need_rust" ]; then
	echo "quickstart: gib needs Rust >= $need_rust; this machine has ${have_rust:-no rustc}." >&2
	echo "  Install rustup (https://rustup.rs), then: rustup toolchain install stable" >&2
	echo "  and run examples/quickstart.sh again." >&2
	exit 1
fi

phase 1 "the Debian packages it needs (uidmap, mmdebstrap, Python, zstd, podman)"
if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends ca-certificates uidmap mmdebstrap \
		python3 python3-venv python3-pip zstd xz-utils podman runc >/dev/null
else
	echo "not root: skipping; install them yourself if a later step says one is missing"
fi

phase 2 "building gib: a release build, 5-6 minutes on 2 cores"
cargo build --release --locked
gib=$top/target/release/gib

stage3=target/gib-fixtures/mini-stage3.tar.zst
if [ ! -e "$stage3" ]; then
	phase 3 "building the mini stage3, once: about 2 minutes (kept in $stage3)"
	mkdir -p target/gib-fixtures
	tests/fixtures/mini-stage3/build.sh "$stage3"
else
	phase 3 "the mini stage3 is already built ($stage3)"
fi

phase 4 "gib build: greet, compiled from source by emerge, about 30 seconds"
"$gib" build -f examples/greet/gib.yaml --cache-dir target/quickstart-cache \
	--archive target/greet.tar

phase 5 "podman load + run"
store=$top/target/quickstart-podman
podman=(podman --root "$store/root" --runroot "$store/run" --storage-driver vfs
	--runtime /usr/sbin/runc --cgroup-manager cgroupfs)
"${podman[@]}" load -i target/greet.tar
"${podman[@]}" run --rm --ulimit nofile=20000:20000 --ulimit nproc=1024:1024 \
	--network none greet:latest

cat <<EOF

==> done in $(elapsed). In $top:
  gib:    target/release/gib
          (on your PATH: cargo install --locked --path . , or copy it to /usr/local/bin)
  image:  target/greet.tar, for podman load / docker load (SBOM: target/greet.tar.spdx.json);
          greet:latest in the podman store target/quickstart-podman
  cache:  target/quickstart-cache (stage3, builders, binary packages, logs)

Try next:
  target/release/gib plan -f examples/greet/gib.yaml      what gib would do, building nothing
  target/release/gib inspect greet --cache-dir target/quickstart-cache
                                                          what the image holds, package by package
  change greet's USE flag in examples/greet/gib.yaml (loud -> -loud) and run this script
  again: greet is rebuilt (gib itself and the stage3 are not) and prints "hello from gib"
  write your own gib.yaml: docs/gib-yaml.md lists every key, examples/contract/gib.yaml uses most
EOF
