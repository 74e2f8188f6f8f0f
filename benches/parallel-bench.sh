#!/bin/sh
# Benchmark a wide DAG on the mini stage3 (real Portage) built one image at a time and three
# at a time: base (glibc, baselayout) with five children (lib, tools, svc, unfree, notes) and
# a grandchild (app on lib). Each build starts from an empty cache of its own (no stage3
# unpacked, no binary packages, no entries), with the same SOURCE_DATE_EPOCH and gib.lock.
# The two alternate, RUNS times each (default 2), and the best of each is kept, so that a
# burst of other work on the machine weighs on neither. Prints both wall times, the ratio
# (goal: at most 0.7 on two cores) and checks that both layouts have the same index.
# Needs root or a user with /etc/subuid ranges, and what examples/quickstart.sh installs.
# Usage: benches/parallel-bench.sh        (JOBS=3 sets the parallel run's --jobs)
# Not a test: the figures depend on the machine (and on what else runs on it).
set -eu

cd "$(dirname "$0")/.."
top=$(pwd)
bench=$top/target/parallel-bench
jobs=${JOBS:-3}
runs=${RUNS:-2}

. "$top/benches/mini-stage3.sh"

rm -rf "$bench"
mkdir -p "$bench"
cat >"$bench/notes.sh" <<'EOF'
mkdir -p "$ROOT/etc"
echo notes > "$ROOT/etc/notes"
EOF
cat >"$bench/gib.yaml" <<EOF
stage3:
  path: $stage3
portage:
  sync_type: none
build:
  accept_licenses:
    app-misc/unfree-greeting: [gib-EULA]
images:
  base:
    from: scratch
    tag: t
    packages: [sys-apps/baselayout, sys-libs/glibc]
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
  tools:
    from: base
    tag: t
    packages: [dev-util/greet-tools]
  svc:
    from: base
    tag: t
    packages: [app-misc/svc-whoami]
  unfree:
    from: base
    tag: t
    packages: [app-misc/unfree-greeting]
  notes:
    from: base
    tag: t
    script: $bench/notes.sh
EOF

# seconds N: the wall time of one build with --jobs N from an empty cache, in seconds.
seconds() {
	rm -rf "$bench/cache-$1" "$bench/layout-$1"
	start=$(date +%s.%N)
	SOURCE_DATE_EPOCH=1700000000 "$gib" build -f "$bench/gib.yaml" --cache-dir "$bench/cache-$1" \
		--jobs "$1" --progress plain --oci-layout "$bench/layout-$1" >/dev/null 2>"$bench/jobs-$1.err" || {
		cat "$bench/jobs-$1.err" >&2
		exit 1
	}
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }' | tee -a "$bench/runs-$1"
}

# best T BEST: the smaller of two times (BEST empty: T).
best() {
	if [ -z "$2" ] || awk -v t="$1" -v b="$2" 'BEGIN { exit !(t < b) }'; then echo "$1"; else echo "$2"; fi
}

one=
many=
i=0
while [ "$i" -lt "$runs" ]; do
	# (An assignment keeps a failed build's status; a function's argument would not.)
	t=$(seconds 1) || exit 1
	one=$(best "$t" "$one")
	t=$(seconds "$jobs") || exit 1
	many=$(best "$t" "$many")
	i=$((i + 1))
done
echo "each run, --jobs 1: $(tr '\n' ' ' <"$bench/runs-1")s; --jobs $jobs: $(tr '\n' ' ' <"$bench/runs-$jobs")s"
echo "--jobs 1, empty cache (best of $runs):      $one s"
echo "--jobs $jobs, empty cache (best of $runs):      $many s"
awk -v a="$many" -v b="$one" -v j="$jobs" 'BEGIN { printf "ratio (jobs %s / jobs 1):   %.2f\n", j, a / b }'
if cmp -s "$bench/layout-1/index.json" "$bench/layout-$jobs/index.json"; then
	echo "layouts: the same index.json"
else
	echo "layouts: the index.json files differ" >&2
	exit 1
fi
