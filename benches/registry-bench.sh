#!/bin/sh
# Push benchmark: a three-image chain (base, mid on base, top on mid) from an OCI layout to a
# local docker-registry with TLS and htpasswd, pushed by `gib __registry push` (a test hook:
# build gib with --features test-hooks; each child with --mount-from its parent, as
# `gib build --push` does) against `skopeo copy oci:… docker://…` of the same images. Each
# side gets a fresh registry (fresh storage) per round; the ratio is gib's time over
# skopeo's, summed over the rounds (target: at most 1.0).
#
# Usage: benches/registry-bench.sh [ROUNDS]   (GIB=path/to/gib, default target/release/gib;
#        BASE_MB, MID_MB, TOP_MB: the random payload of each image's own layer)
# Needs: docker-registry, skopeo, umoci, openssl, htpasswd, busybox-static, python3.
set -eu

rounds=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
gib=${GIB:-$here/target/release/gib}
[ -x "$gib" ] || { echo "build gib with its test hooks first: cargo build --release --features test-hooks (or set GIB)" >&2; exit 2; }
base_mb=${BASE_MB:-48}
mid_mb=${MID_MB:-32}
top_mb=${TOP_MB:-16}

work=$(mktemp -d "${TMPDIR:-/tmp}/gib-registry-bench.XXXXXX")
pids=""
cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work"

now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.3f}')"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A CA and a server certificate for 127.0.0.1, and one user.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
    -out ca.pem -days 1 -subj "/CN=gib bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
    -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 1 -extfile ext.cnf 2>/dev/null
mkdir certs && cp ca.pem certs/ca.crt
htpasswd -Bbn bench bench-pw > htpasswd
printf '{"auths":{}}' > empty-auth.json

# start_registry NAME: a fresh registry; sets $port.
start_registry() {
    port=$(free_port)
    mkdir -p "$1"
    cat > "$1/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/$1/storage
http:
  addr: 127.0.0.1:$port
  secret: bench
  tls:
    certificate: $work/server.pem
    key: $work/server.key
auth:
  htpasswd:
    realm: bench
    path: $work/htpasswd
YAML
    docker-registry serve "$1/config.yml" > "$1/log" 2>&1 &
    pids="$pids $!"
    last_pid=$!
    i=0
    until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 200 ] || { echo "registry $1 did not start" >&2; cat "$1/log" >&2; exit 1; }
        sleep 0.05
    done
    printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$port" "$(printf bench:bench-pw | base64 -w0)" > "$1/auth.json"
}

# The chain, made with umoci: busybox plus random bytes, then a layer per child.
umoci init --layout oci
umoci new --image oci:base
mkdir -p t-base/bin t-mid t-top
cp /bin/busybox t-base/bin/busybox
head -c $((base_mb << 20)) /dev/urandom > t-base/bin/payload-base
umoci insert --image oci:base t-base/bin /bin
head -c $((mid_mb << 20)) /dev/urandom > t-mid/payload-mid
umoci insert --image oci:base --tag mid t-mid /mid
head -c $((top_mb << 20)) /dev/urandom > t-top/payload-top
umoci insert --image oci:mid --tag top t-top /top
digest() { python3 -c "import json,sys; print(next(m['digest'] for m in json.load(open('oci/index.json'))['manifests'] if m['annotations']['org.opencontainers.image.ref.name']=='$1'))"; }
d_base=$(digest base); d_mid=$(digest mid); d_top=$(digest top)
echo "chain: base ${base_mb} MiB, mid +${mid_mb} MiB, top +${top_mb} MiB; $(du -sh oci/blobs | cut -f1) of blobs; gib: $gib"

gib_total=0
skopeo_total=0
r=1
while [ $r -le "$rounds" ]; do
    start_registry "gib-$r"
    reg=127.0.0.1:$port
    export REGISTRY_AUTH_FILE="$work/gib-$r/auth.json" DOCKER_CONFIG="$work/no-docker"
    t0=$(now)
    "$gib" __registry push oci/blobs "$d_base" "$reg/bench/base:1" --ca ca.pem > /dev/null
    "$gib" __registry push oci/blobs "$d_mid" "$reg/bench/mid:1" --ca ca.pem --mount-from "$reg/bench/base" > /dev/null
    "$gib" __registry push oci/blobs "$d_top" "$reg/bench/top:1" --ca ca.pem --mount-from "$reg/bench/mid" > /dev/null
    t1=$(now)
    kill "$last_pid"
    unset REGISTRY_AUTH_FILE DOCKER_CONFIG

    start_registry "skopeo-$r"
    reg=127.0.0.1:$port
    t2=$(now)
    for image in base mid top; do
        skopeo copy -q --dest-creds bench:bench-pw --dest-cert-dir certs \
            "oci:oci:$image" "docker://$reg/bench/$image:1" > /dev/null
    done
    t3=$(now)
    kill "$last_pid"

    g=$(elapsed "$t0" "$t1"); s=$(elapsed "$t2" "$t3")
    echo "round $r: gib ${g}s, skopeo ${s}s, ratio $(python3 -c "print(f'{$g/$s:.2f}')")"
    gib_total=$(python3 -c "print($gib_total + $g)")
    skopeo_total=$(python3 -c "print($skopeo_total + $s)")
    r=$((r + 1))
done
python3 -c "print(f'total: gib {$gib_total:.3f}s, skopeo {$skopeo_total:.3f}s, ratio gib/skopeo = {$gib_total/$skopeo_total:.2f} (target <= 1.0)')"
