#!/bin/sh
# Benchmark the two legs of a two-platform file on an amd64 host: the greet chain (glibc ->
# greet) built with `gib build --platform linux/amd64` natively and with
# `--platform linux/arm64` under qemu-user (binfmt_misc's qemu-aarch64, registered with F;
# .ci/run does that), each from an empty cache, then one `gib build` of both platforms (an
# image index per image) from an empty cache. Prints the wall times and the legs' ratio.
# Needs root, the test suite's two mini stage3s (`cargo test --locked --test integration
# fixture::` builds them into target/gib-fixtures) and qemu-user-static.
# Usage: benches/multiarch-bench.sh
# Not a test: the figures depend on the machine.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
bench=$top/target/multiarch-bench

# $gib, and the amd64 mini stage3 as $stage3 (benches/mini-stage3.sh).
. "$top/benches/mini-stage3.sh"
amd64=$stage3
arm64=
for f in "$top"/target/gib-fixtures/mini-stage3-arm64-$hash16.tar.zst; do
	[ -e "$f" ] && arm64=$f
done
if [ -z "$arm64" ]; then
	echo "multiarch-bench: build the arm64 mini stage3 first: cargo test --locked --test integration fixture::mini_stage3_arm64" >&2
	exit 1
fi

rm -rf "$bench"
mkdir -p "$bench"
cat >"$bench/gib.yaml" <<YAML
stage3:
  path: {amd64: $amd64, arm64: $arm64}
portage:
  sync_type: none
platforms: [linux/amd64, linux/arm64]
images:
  base:
    tag: t
    packages: [sys-libs/glibc]
  app:
    from: base
    tag: t
    packages: [app-misc/greet]
    cmd: [greet]
YAML

now() { date +%s.%N; }
leg() {
	start=$(now)
	"$gib" build -f "$bench/gib.yaml" --cache-dir "$bench/cache-$1" --platform "linux/$1" \
		--oci-layout "$bench/layout-$1" --progress plain >"$bench/$1.log" 2>&1 ||
		{ echo "multiarch-bench: the $1 leg failed; see $bench/$1.log" >&2; exit 1; }
	awk -v a="$(now)" -v b="$start" 'BEGIN { print a - b }'
}

both() {
	start=$(now)
	"$gib" build -f "$bench/gib.yaml" --cache-dir "$bench/cache-both" \
		--oci-layout "$bench/layout-both" --progress plain >"$bench/both.log" 2>&1 ||
		{ echo "multiarch-bench: the run of both platforms failed; see $bench/both.log" >&2; exit 1; }
	awk -v a="$(now)" -v b="$start" 'BEGIN { print a - b }'
}

amd=$(leg amd64)
arm=$(leg arm64)
all=$(both)
printf 'amd64 leg (native):           %6.1f s\n' "$amd"
printf 'arm64 leg (qemu-user):        %6.1f s\n' "$arm"
printf 'emulated / native:            %6.1f x\n' "$(awk -v a="$arm" -v b="$amd" 'BEGIN { print a / b }')"
printf 'both in one run (an index):   %6.1f s\n' "$all"
