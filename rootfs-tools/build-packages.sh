#!/bin/sh
# build-packages: configure Portage from gib's files, emerge the image's atoms into ROOT,
# then finish ROOT as a distroless root. Runs inside the builder; gib reads its output.
#
# Arguments: the package atoms (none: only the builder's). Settings (environment): GIB_INPUT
# (gib's read-only input directory), GIB_BUILDER_ATOMS (atoms to emerge into the builder
# itself first: toolchains a script needs), GIB_EMERGE_OPTS (extra emerge options), and
# finish-root.sh's GIB_KEEP_*.
set -eu

input=${GIB_INPUT:-/var/tmp/gib}
ROOT=${ROOT:-/staging}
export ROOT

# Portage's per-package logs belong to its build user (a subordinate id without privileges,
# mode 0660): when the build ends, failed or not, give them to the namespace's root, who is
# the user running gib, so that user can read the log gib names.
logs_to_caller() {
	if [ -n "${PORTAGE_LOGDIR:-}" ] && [ -d "$PORTAGE_LOGDIR" ]; then
		chown -R 0:0 "$PORTAGE_LOGDIR" 2>/dev/null || true
		chmod -R u+rwX "$PORTAGE_LOGDIR" 2>/dev/null || true
	fi
}
trap logs_to_caller EXIT

sh "$input/tools/configure-portage.sh"

# With a binhost, emerge fetches the binary packages it lists whose USE flags and
# dependencies match (--binpkg-respect-use, --binpkg-changed-deps) and compiles the rest.
getbinpkg=
if [ -s "$input/portage/binrepos.conf" ]; then
	getbinpkg=--getbinpkg
fi

gib_emerge() { # root atom...
	gib__root=$1
	shift
	echo ">>> gib: emerge --root=$gib__root $getbinpkg ${GIB_EMERGE_OPTS:-} $*"
	# shellcheck disable=SC2086 # GIB_EMERGE_OPTS is a list of options; $getbinpkg may be empty
	emerge --root="$gib__root" --oneshot --usepkg $getbinpkg --binpkg-respect-use=y \
		--binpkg-changed-deps=y --color=n --nospinner ${GIB_EMERGE_OPTS:-} "$@"
}

if [ -n "${GIB_BUILDER_ATOMS:-}" ]; then
	# shellcheck disable=SC2086 # a list of atoms
	gib_emerge / $GIB_BUILDER_ATOMS
fi

mkdir -p "$ROOT"
if [ $# = 0 ]; then
	# A script finishes ROOT after it has run.
	exit 0
fi
# The base accounts before the first package: account packages add theirs with shadow's
# tools, which need the files to exist.
sh "$input/tools/base-accounts.sh"
# Build dependencies (BDEPEND) land in the builder's / by themselves since EAPI 7.
gib_emerge "$ROOT" "$@"

echo ">>> gib: finishing $ROOT"
sh "$input/tools/finish-root.sh"
