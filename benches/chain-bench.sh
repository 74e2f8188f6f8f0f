#!/bin/sh
# Benchmark an image chain on the mini stage3 (real Portage): base (glibc, baselayout) ->
# lib (libgreet) -> app (greet), each built in its parent's builder. Prints the wall time of
#   - the first build from an empty cache,
#   - a rebuild with nothing changed (every image reused, no sandbox entered),
#   - a rebuild after app's USE flags changed (app alone),
#   - a rebuild after base changed (all three, packages from the binary package cache).
# Needs root or a user with /etc/subuid ranges, and what examples/quickstart.sh installs.
# Usage: benches/chain-bench.sh           (RUNS=5 repeats the no-op rebuild, best is kept)
# Not a test: the figures depend on the machine.
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
bench=$top/target/chain-bench
runs=${RUNS:-3}

. "$top/benches/mini-stage3.sh"

rm -rf "$bench"
mkdir -p "$bench"
chain() { # greet's USE flags, base's extra env
	cat >"$bench/gib.yaml" <<EOF
stage3:
  path: $stage3
portage:
  sync_type: none
build:
  threads: 2
  package_use_flags:
    app-misc/greet: [$1]
images:
  base:
    from: scratch
    tag: t
    packages: [sys-apps/baselayout, sys-libs/glibc]
    env: {BASE: "$2"}
  lib:
    from: base
    tag: t
    packages: [dev-libs/libgreet]
  app:
    from: lib
    tag: t
    packages: [app-misc/greet]
    entrypoint: [/usr/bin/greet]
    test: /usr/bin/greet
EOF
}

# seconds COMMAND...: the wall time of one run, in seconds with milliseconds.
seconds() {
	start=$(date +%s.%N)
	"$@" >/dev/null 2>"$bench/last.err" || {
		cat "$bench/last.err" >&2
		exit 1
	}
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

build() { seconds "$gib" build -f "$bench/gib.yaml" --cache-dir "$bench/cache" app; }

chain loud 1
echo "first build, empty cache:            $(build) s"
best=
i=0
while [ "$i" -lt "$runs" ]; do
	t=$(build)
	if [ -z "$best" ] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
	i=$((i + 1))
done
grep -q "Reusing app" "$bench/last.err"
echo "no-op rebuild (best of $runs):        $best s"
chain -loud 1
echo "app's USE changed (app rebuilt):    $(build) s"
grep -q "Reusing lib" "$bench/last.err"
chain -loud 2
echo "base changed (all three rebuilt):   $(build) s"
