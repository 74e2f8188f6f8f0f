#!/bin/sh
# finish-root: turn the root emerge filled into a distroless image root.
#
# Runs inside the builder after emerge, with ROOT (default /staging). Removes what only the
# package manager needs, headers, static libraries and service-manager files unless asked to
# keep them, trims the package database to what scanners read (CONTENTS lists no file
# removed here), and adds the few files every image needs: /etc/passwd and /etc/group
# (root, nobody, nonroot), /tmp (1777) and /etc/os-release.
# Settings: GIB_KEEP_HEADERS, GIB_KEEP_STATIC_LIBS, GIB_KEEP_SERVICE_FILES,
# GIB_KEEP_PACKAGE_DB (1 keeps),
# SOURCE_DATE_EPOCH (times in CONTENTS newer than it are clamped to it), GIB_TRIM_REPORT (a
# file outside the root that gets one `<bytes>\t/<path>` line per path trimmed),
# GIB_PACKAGE_DB_OUT (a directory outside the root that gets the package database when the
# image does not keep it: the images built on this one must see what it installed).
set -eu

ROOT=${ROOT:-/staging}
keep_headers=${GIB_KEEP_HEADERS:-0}
keep_static_libs=${GIB_KEEP_STATIC_LIBS:-0}
keep_service_files=${GIB_KEEP_SERVICE_FILES:-0}
keep_package_db=${GIB_KEEP_PACKAGE_DB:-1}

report=${GIB_TRIM_REPORT:-/dev/null}
: >"$report"
package_db_out=${GIB_PACKAGE_DB_OUT:-}
if [ -n "$package_db_out" ]; then
	rm -rf "$package_db_out"
fi

# Every path trimmed, one `/<path>` a line: their entries leave the package database too.
trimmed=$(mktemp)
# A package's CONTENTS as it should be, written outside the root.
contents=$(mktemp)
trap 'rm -f "$trimmed" "$contents"' EXIT

cd "$ROOT"

# Remove paths (relative to the root), recording what each held, for `gib inspect`.
trim() {
	for path in "$@"; do
		[ -e "$path" ] || [ -L "$path" ] || continue
		bytes=$(du -sb "$path" 2>/dev/null | cut -f1)
		printf '%s\t/%s\n' "${bytes:-0}" "$path" >>"$report"
		printf '/%s\n' "$path" >>"$trimmed"
		rm -rf "$path"
	done
}

# Portage's own state and scratch space.
trim var/cache/edb var/lib/portage etc/portage var/tmp/portage var/log/portage \
	var/cache/distfiles var/cache/binpkgs etc/ld.so.cache~
for dir in tmp var/tmp; do
	[ -d "$dir" ] || continue
	for entry in "$dir"/* "$dir"/.[!.]*; do
		trim "$entry"
	done
done

if [ "$keep_headers" != 1 ]; then
	trim usr/include usr/share/aclocal usr/share/pkgconfig usr/lib*/pkgconfig \
		usr/lib*/cmake usr/share/cmake
fi
if [ "$keep_static_libs" != 1 ]; then
	for dir in lib lib32 lib64 usr/lib usr/lib32 usr/lib64; do
		[ -d "$dir" ] && [ ! -L "$dir" ] || continue
		find "$dir" \( -name '*.a' -o -name '*.la' \) \( -type f -o -type l \) -print |
			while IFS= read -r file; do trim "$file"; done
	done
fi
# The files of service managers (OpenRC's scripts and their settings, systemd's units): a
# container runs its program, not an init system.
if [ "$keep_service_files" != 1 ]; then
	trim etc/init.d etc/conf.d usr/lib/systemd/system usr/lib/systemd/user \
		etc/systemd/system etc/systemd/user
fi
# shadow's backup copies (passwd-, group-, …), left by the groupadd/useradd of account
# packages, are not part of an image.
trim etc/passwd- etc/group- etc/shadow- etc/gshadow-

# The package database: what scanners (syft's portage cataloger) read, nothing that
# records the build machine or time. Trimmed so even when the image does not keep it.
if [ -d var/db/pkg ]; then
	for pkg in var/db/pkg/*/*; do
		[ -d "$pkg" ] || continue
		for entry in "$pkg"/* "$pkg"/.[!.]*; do
			[ -e "$entry" ] || continue
			case ${entry##*/} in
			CATEGORY | PF | SLOT | CONTENTS | LICENSE | USE | IUSE | repository | SIZE | \
				DESCRIPTION | HOMEPAGE | EAPI | KEYWORDS | RDEPEND | DEPEND | BDEPEND | \
				PDEPEND | IDEPEND | PROVIDES | REQUIRES | NEEDED | NEEDED.ELF.2) ;;
			*) rm -rf "$entry" ;;
			esac
		done
		# CONTENTS lists what the root holds: not what was trimmed above (a path or one of its
		# parents trimmed), for syft and `gib inspect`. It also records each file's mtime at
		# merge time: clamped like the layer's mtimes, or two builds of the same inputs differ
		# in every CONTENTS. Only a CONTENTS that changes is rewritten: rewriting a parent
		# image's would copy it up into this image's layer.
		[ -f "$pkg/CONTENTS" ] || continue
		awk -v sde="${SOURCE_DATE_EPOCH:-}" -v list="$trimmed" '
			BEGIN {
				while ((getline line < list) > 0) gone[line] = 1
			}
			{
				path = substr($0, index($0, " ") + 1)
				if ($1 == "obj") sub(/ [^ ]+ [^ ]+$/, "", path)
				if ($1 == "sym") sub(/ -> .*$/, "", path)
				for (p = path; p ~ /^\//; sub(/\/[^\/]*$/, "", p))
					if (p in gone) next
				if (sde != "" && ($1 == "obj" || $1 == "sym") && $NF ~ /^[0-9]+$/ && $NF + 0 > sde + 0)
					sub(/[0-9]+$/, sde)
				print
			}' "$pkg/CONTENTS" >"$contents"
		cmp -s "$contents" "$pkg/CONTENTS" || cat "$contents" >"$pkg/CONTENTS"
	done
fi
if [ "$keep_package_db" != 1 ]; then
	if [ -n "$package_db_out" ] && [ -d var/db/pkg ]; then
		mkdir -p "$package_db_out"
		cp -a var/db/pkg/. "$package_db_out/"
	fi
	trim var/db/pkg
fi
# Leave no empty /var/db behind when nothing was recorded there.
rmdir var/db 2>/dev/null || true

# Accounts every distroless image has, unless packages provided them (already there when an
# emerge filled the root).
sh "$(dirname "$0")/base-accounts.sh"

mkdir -p tmp
[ "$(stat -c %a tmp)" = 1777 ] || chmod 1777 tmp

if [ ! -e etc/os-release ] && [ ! -e usr/lib/os-release ]; then
	cat >etc/os-release <<'OS'
NAME=Gentoo
ID=gentoo
PRETTY_NAME="Gentoo Linux (distroless)"
VARIANT="distroless"
VARIANT_ID=distroless
HOME_URL="https://www.gentoo.org/"
BUG_REPORT_URL="https://bugs.gentoo.org/"
OS
fi

# The dynamic linker's cache, last, so it sees the final set of libraries.
if command -v ldconfig >/dev/null 2>&1; then
	ldconfig -r "$ROOT" 2>/dev/null || echo "finish-root: ldconfig -r $ROOT failed; the image has no ld.so.cache" >&2
fi
# ldconfig's own bookkeeping (file times of the build machine) is not part of the image.
rm -rf var/cache/ldconfig
rmdir var/cache 2>/dev/null || true
