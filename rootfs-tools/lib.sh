#!/bin/sh
# lib.sh: helpers for `script:` images, sourced before the user's script runs in the builder.
#
# Every helper writes into ROOT (the image root, /staging) and takes paths as they will be
# in the image. POSIX sh: the builder's /bin/sh may be dash or bash.
#
#   gib_copy_gcc_runtime              copy libgcc_s and libstdc++ (those that exist) into ROOT
#   gib_install_binary SRC [DEST]     install a built program at DEST (default /usr/bin/NAME)
#                                     with the shared libraries it needs that ROOT lacks
#   gib_copy_libs FILE...             copy the shared libraries FILE needs that ROOT lacks
#   gib_add_group NAME GID            add a group to ROOT's /etc/group (once)
#   gib_add_user NAME UID GID [HOME]  add a user (no login shell) to ROOT's /etc/passwd and
#                                     create its home directory, owned by it
set -eu

ROOT=${ROOT:-/staging}

# Copy a builder file to a path in the image (symlinks followed: the image gets the file).
gib__copy_file() { # src dest-in-root
	mkdir -p "$ROOT$(dirname "$2")"
	cp -L --preserve=mode "$1" "$ROOT$2"
}

gib_copy_libs() {
	for gib__file in "$@"; do
		# ldd prints `name => /path (addr)` and the loader as `/path (addr)`.
		ldd "$gib__file" 2>/dev/null | while read -r gib__a gib__b gib__c _; do
			case $gib__b in
			"=>") gib__lib=$gib__c ;;
			*) gib__lib=$gib__a ;;
			esac
			case $gib__lib in
			/*) ;;
			*) continue ;;
			esac
			if [ -e "$ROOT$gib__lib" ]; then
				continue
			fi
			echo "gib: $gib__lib (needed by ${gib__file##*/})"
			gib__copy_file "$gib__lib" "$gib__lib"
		done
	done
}

gib_install_binary() {
	gib__src=$1
	gib__dest=${2:-/usr/bin/${1##*/}}
	[ -f "$gib__src" ] || {
		echo "gib_install_binary: $gib__src is not a file" >&2
		return 1
	}
	mkdir -p "$ROOT$(dirname "$gib__dest")"
	cp "$gib__src" "$ROOT$gib__dest"
	chmod 0755 "$ROOT$gib__dest"
	gib_copy_libs "$gib__src"
}

gib_copy_gcc_runtime() {
	gib__found=0
	for gib__name in libgcc_s.so.1 libstdc++.so.6; do
		# gcc knows where its own runtime is; fall back to the loader's cache.
		gib__path=$(gcc -print-file-name="$gib__name" 2>/dev/null || true)
		case $gib__path in
		/*) ;;
		*) gib__path=$(ldconfig -p 2>/dev/null | awk -v n="$gib__name" '$1 == n { print $NF; exit }') ;;
		esac
		if [ -z "$gib__path" ] || [ ! -e "$gib__path" ]; then
			continue
		fi
		gib__copy_file "$gib__path" "/usr/lib64/$gib__name"
		gib__found=$((gib__found + 1))
	done
	if [ "$gib__found" = 0 ]; then
		echo "gib_copy_gcc_runtime: no libgcc_s.so.1 or libstdc++.so.6 in the builder" >&2
		return 1
	fi
}

gib_add_group() { # name gid
	mkdir -p "$ROOT/etc"
	touch "$ROOT/etc/group"
	grep -q "^$1:" "$ROOT/etc/group" || echo "$1:x:$2:" >>"$ROOT/etc/group"
}

gib_add_user() { # name uid gid [home]
	gib__home=${4:-/home/$1}
	mkdir -p "$ROOT/etc"
	touch "$ROOT/etc/passwd"
	grep -q "^$1:" "$ROOT/etc/passwd" ||
		echo "$1:x:$2:$3:$1:$gib__home:/sbin/nologin" >>"$ROOT/etc/passwd"
	mkdir -p "$ROOT$gib__home"
	chown "$2:$3" "$ROOT$gib__home"
}
