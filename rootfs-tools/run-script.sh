#!/bin/sh
# run-script: run an image's `script:` in the builder with ROOT=/staging and lib.sh's helpers,
# then finish ROOT as build-packages.sh does after emerge.
#
# Arguments: the script (read-only inside the builder). Settings: GIB_INPUT and finish-root.sh's.
set -eu

input=${GIB_INPUT:-/var/tmp/gib}
ROOT=${ROOT:-/staging}
export ROOT
mkdir -p "$ROOT"

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$input/tools/lib.sh"

# Only the script is bound into the builder (its input key hashes it alone), so it works
# in a scratch directory of its own.
cd "$(mktemp -d)"
echo ">>> gib: running $1 with ROOT=$ROOT"
# Sourced, so the helpers and `set -eu` apply; a failing command fails the build.
# shellcheck disable=SC1090
. "$1"

cd /
echo ">>> gib: finishing $ROOT"
sh "$input/tools/finish-root.sh"
