#!/bin/sh
# Benchmark gib's layer writer against buildah commit and plain tar pipelines on a
# stage3-sized tree (a Debian root made by mmdebstrap, ~430 MB, ~22k files), cached under
# target/oci-bench/. Needs root (mmdebstrap, buildah with a private vfs store), and:
#   apt-get install -y mmdebstrap buildah pigz zstd time
# Usage: benches/oci-bench.sh            (RUNS=3 to repeat each measurement, best is kept)
# Not a test: the figures depend on the machine; it prints them and the target ratios.
set -eu

cd "$(dirname "$0")/.."
bench=$(pwd)/target/oci-bench
tree=$bench/tree
runs=${RUNS:-1}
mkdir -p "$bench"

if [ ! -d "$tree" ]; then
    echo "making the tree (once) in $tree"
    rm -rf "$tree.tmp"
    mmdebstrap --variant=standard --include=python3,perl bookworm "$tree.tmp" \
        http://deb.debian.org/debian
    mv "$tree.tmp" "$tree"
fi
cargo build --release --quiet
gib=$(pwd)/target/release/gib

echo "tree: $(du -sh "$tree" | cut -f1), $(find "$tree" | wc -l) entries, $(nproc) cpus"
# Warm the page cache so every contender reads the tree from memory.
tar -C "$tree" -cf - . > /dev/null

# measure NAME COMMAND: best wall time (s), with its peak RSS (KiB) and CPU time (s), over
# $runs runs. CPU time is the steadier figure when other jobs share the machine.
measure() {
    name=$1
    shift
    best=""
    i=0
    while [ "$i" -lt "$runs" ]; do
        "$@" > /dev/null
        set -- "$@"
        read -r wall rss user sys < "$bench/time.txt"
        if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then
            best=$wall
            best_rss=$rss
            best_cpu=$(awk "BEGIN{print $user + $sys}")
        fi
        i=$((i + 1))
    done
    eval "time_$name=$best"
    eval "rss_$name=$best_rss"
    eval "cpu_$name=$best_cpu"
}

timed() {
    /usr/bin/time -f "%e %M %U %S" -o "$bench/time.txt" "$@"
}

gib_build() {
    compression=$1
    rm -rf "$bench/gib-cache" "$bench/gib-$compression"
    mkdir -p "$bench/gib-$compression"
    cat > "$bench/gib-$compression/gib.yaml" <<YAML
build:
  compression: $compression
images:
  bench:
    rootfs: $tree
YAML
    timed "$gib" build -f "$bench/gib-$compression/gib.yaml" --cache-dir "$bench/gib-cache" \
        2> "$bench/gib.log"
    # The layer is the biggest blob.
    size=$(find "$bench/gib-cache/blobs/sha256" -type f -printf '%s\n' | sort -n | tail -1)
    eval "size_gib_$compression=$size"
}

buildah_commit() {
    b="buildah --root $bench/buildah-root --runroot $bench/buildah-run --storage-driver vfs"
    $b rm --all > /dev/null 2>&1 || true
    $b rmi --all --force > /dev/null 2>&1 || true
    rm -rf "$bench/buildah-oci"
    ctr=$($b from scratch)
    mnt=$($b mount "$ctr")
    cp -a "$tree/." "$mnt/"
    # Only the commit is timed: layer diff, gzip (the default), digests, OCI layout.
    timed $b commit --quiet --disable-compression=false "$ctr" "oci:$bench/buildah-oci:bench"
    size_buildah=$(find "$bench/buildah-oci/blobs/sha256" -type f -printf '%s\n' | sort -n | tail -1)
    $b rm "$ctr" > /dev/null
}

pipeline() {
    timed sh -c "tar -C '$tree' -cf - . | $1 | tee '$bench/pipe.out' | sha256sum"
    eval "size_$2=$(stat -c %s "$bench/pipe.out")"
}

measure gib_gzip gib_build gzip
measure gib_zstd gib_build zstd
measure buildah buildah_commit
measure pigz pipeline pigz pigz
measure gzip pipeline gzip gzip
measure zstd pipeline "zstd -q -T0" zstd
rm -f "$bench/pipe.out"

row() {
    printf '%-30s %7ss %7ss %8s MiB %9s MiB\n' "$1" "$2" "$3" "$(($4 / 1024))" "$(($5 / 1048576))"
}
echo
printf '%-30s %8s %8s %12s %13s\n' "" "wall" "cpu" "peak RSS" "compressed"
# The time_/cpu_/rss_/size_ variables are assigned by name (eval) in measure and friends.
# shellcheck disable=SC2154
{
	row "gib build (gzip)" "$time_gib_gzip" "$cpu_gib_gzip" "$rss_gib_gzip" "$size_gib_gzip"
	row "gib build (zstd)" "$time_gib_zstd" "$cpu_gib_zstd" "$rss_gib_zstd" "$size_gib_zstd"
	row "buildah commit (gzip)" "$time_buildah" "$cpu_buildah" "$rss_buildah" "$size_buildah"
	row "tar | pigz | sha256sum" "$time_pigz" "$cpu_pigz" "$rss_pigz" "$size_pigz"
	row "tar | gzip | sha256sum" "$time_gzip" "$cpu_gzip" "$rss_gzip" "$size_gzip"
	row "tar | zstd -T0 | sha256sum" "$time_zstd" "$cpu_zstd" "$rss_zstd" "$size_zstd"
}
echo
awk -v g="$time_gib_gzip" -v b="$time_buildah" -v z="$time_gib_zstd" -v t="$time_zstd" \
    -v gs="$size_gib_gzip" -v bs="$size_buildah" -v r1="$rss_gib_gzip" -v r2="$rss_gib_zstd" 'BEGIN {
    printf "gib gzip / buildah commit: %.2fx wall (target <= 0.80), %.2fx size\n", g / b, gs / bs
    printf "gib zstd / tar|zstd -T0:   %.2fx wall (target <= 1.20)\n", z / t
    m = r1 > r2 ? r1 : r2
    printf "gib peak RSS:              %.1f MiB (target <= 64)\n", m / 1024
}'
