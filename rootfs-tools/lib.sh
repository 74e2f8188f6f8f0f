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
#
# Language helpers: SRC may be read-only (e.g. under $GIB_CONTEXT); builds happen in scratch
# directories. Each toolchain must be in the builder (builder_packages), not in the image.
#
#   gib_go_build SRC [PACKAGE...]     go build PACKAGEs (default .) of the module in SRC, static
#                                     unless CGO_ENABLED=1; install each program to /usr/bin
#   gib_cargo_build SRC [BIN...]      cargo build --release in SRC (stripped); install the BINs
#                                     (default: every binary) to /usr/bin with their libraries
#   gib_copy_python                   copy the builder's python3 (interpreter, stdlib, libraries)
#                                     into ROOT at the same path, unless ROOT has it
#   gib_pip_install ARG...            pip install ARGs into ROOT with the builder's python3 and its
#                                     install scheme (Debian's: /usr/local); dirs built from a copy
#   gib_copy_node                     copy the builder's node, its libraries and the builtins it
#                                     loads from files (Debian) into ROOT
#   gib_npm_install SRC DEST          copy the Node.js app in SRC (minus node_modules) to DEST in
#                                     ROOT and install its production dependencies there (offline
#                                     only with a package-lock.json, or with no dependencies)
set -eu

ROOT=${ROOT:-/staging}
# Scratch space for the language helpers' builds, at a fixed path: paths end up in what is
# built (pip's direct_url.json, debug paths), and the context is read-only.
gib__scratch_root=${TMPDIR:-/tmp}/gib-scratch

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

# Print an emptied scratch directory named $1.
gib__scratch() { # name
	rm -rf "${gib__scratch_root:?}/$1"
	mkdir -p "$gib__scratch_root/$1"
	echo "$gib__scratch_root/$1"
}

# Fail with a hint when the builder lacks a tool.
gib__need() { # helper tool package
	command -v "$2" >/dev/null 2>&1 && return 0
	echo "$1: no \`$2\` in the builder; add $3 to builder_packages" >&2
	return 1
}

# Copy directory $1's contents into directory $2 (created), leaving out what matches the
# remaining tar --exclude patterns. Files get the copier's ownership, not the context's.
gib__copy_tree() { # src dest [exclude...]
	gib__ct_src=$1
	gib__ct_dest=$2
	shift 2
	for gib__ct_pattern in "$@"; do
		set -- "$@" "--exclude=$gib__ct_pattern"
		shift
	done
	mkdir -p "$gib__ct_dest"
	tar -C "$gib__ct_src" -cf - "$@" . | tar -C "$gib__ct_dest" -xf - --no-same-owner
}

gib_go_build() { # src [package...]
	gib__go_src=${1:?gib_go_build: usage: gib_go_build SRC [PACKAGE...]}
	shift
	[ $# -gt 0 ] || set -- .
	gib__need gib_go_build go dev-lang/go || return 1
	[ -d "$gib__go_src" ] || {
		echo "gib_go_build: $gib__go_src is not a directory" >&2
		return 1
	}
	gib__go_out=$(gib__scratch go-out)
	# The build caches go to scratch unless set: nothing is written into the builder's HOME.
	if [ -z "${GOCACHE:-}" ] || { [ -e "$GOCACHE" ] && [ ! -w "$GOCACHE" ]; }; then
		GOCACHE=$gib__scratch_root/go-cache
	fi
	if [ -z "${GOPATH:-}" ] || { [ -e "$GOPATH" ] && [ ! -w "$GOPATH" ]; }; then
		GOPATH=$gib__scratch_root/go-path
	fi
	export GOCACHE GOPATH
	gib__go_packages=$*
	# Our flags go before the packages; those the user set in GOFLAGS win. -buildvcs=false:
	# the context is no work tree, and its git metadata would make binaries differ.
	set -- -trimpath -o "$gib__go_out/" "$@"
	case " ${GOFLAGS:-} " in *" -ldflags"*) ;; *) set -- "-ldflags=-s -w" "$@" ;; esac
	case " ${GOFLAGS:-} " in *" -buildvcs"*) ;; *) set -- -buildvcs=false "$@" ;; esac
	if [ -d "$gib__go_src/vendor" ]; then
		case " ${GOFLAGS:-} " in *" -mod"*) ;; *) set -- -mod=vendor "$@" ;; esac
	fi
	(cd "$gib__go_src" && CGO_ENABLED=${CGO_ENABLED:-0} go build "$@") || {
		echo "gib_go_build: go build $gib__go_packages failed in $gib__go_src" >&2
		return 1
	}
	gib__go_built=0
	for gib__go_bin in "$gib__go_out"/*; do
		[ -f "$gib__go_bin" ] || continue
		gib_install_binary "$gib__go_bin"
		gib__go_built=$((gib__go_built + 1))
	done
	if [ "$gib__go_built" = 0 ]; then
		echo "gib_go_build: no main package among $gib__go_packages in $gib__go_src" >&2
		return 1
	fi
}

gib_cargo_build() { # src [bin...]
	gib__cargo_src=${1:?gib_cargo_build: usage: gib_cargo_build SRC [BIN...]}
	shift
	gib__need gib_cargo_build cargo virtual/rust || return 1
	[ -f "$gib__cargo_src/Cargo.toml" ] || {
		echo "gib_cargo_build: no Cargo.toml in $gib__cargo_src" >&2
		return 1
	}
	gib__cargo_target=$(gib__scratch cargo-target)
	# Registry downloads go to scratch unless set, not into the builder's HOME.
	if [ -z "${CARGO_HOME:-}" ]; then
		CARGO_HOME=$gib__scratch_root/cargo-home
		export CARGO_HOME
	fi
	# Strip symbols like gib_go_build does, unless the user chose (Cargo.toml's profile loses).
	CARGO_PROFILE_RELEASE_STRIP=${CARGO_PROFILE_RELEASE_STRIP:-symbols}
	export CARGO_PROFILE_RELEASE_STRIP
	gib__cargo_names=$*
	for gib__cargo_bin in "$@"; do
		set -- "$@" --bin "$gib__cargo_bin"
		shift
	done
	set -- build --release --target-dir "$gib__cargo_target" "$@"
	if [ -f "$gib__cargo_src/Cargo.lock" ]; then
		set -- "$@" --locked
	else
		# Cargo would write Cargo.lock next to Cargo.toml: build a copy.
		echo "gib_cargo_build: no Cargo.lock in $gib__cargo_src; building a copy, dependencies unpinned" >&2
		gib__cargo_copy=$(gib__scratch cargo-src)
		gib__copy_tree "$gib__cargo_src" "$gib__cargo_copy" ./target
		gib__cargo_src=$gib__cargo_copy
	fi
	(cd "$gib__cargo_src" && cargo "$@") || {
		echo "gib_cargo_build: cargo build failed in $gib__cargo_src" >&2
		return 1
	}
	if [ -n "$gib__cargo_names" ]; then
		for gib__cargo_bin in $gib__cargo_names; do
			gib_install_binary "$gib__cargo_target/release/$gib__cargo_bin" || return 1
		done
		return 0
	fi
	gib__cargo_built=0
	for gib__cargo_bin in "$gib__cargo_target"/release/*; do
		# Binaries are the executable files without a suffix (not lib*.so, *.d, *.rlib).
		case ${gib__cargo_bin##*/} in *.*) continue ;; esac
		if [ -f "$gib__cargo_bin" ] && [ -x "$gib__cargo_bin" ]; then
			gib_install_binary "$gib__cargo_bin"
			gib__cargo_built=$((gib__cargo_built + 1))
		fi
	done
	if [ "$gib__cargo_built" = 0 ]; then
		echo "gib_cargo_build: $gib__cargo_src built no binary" >&2
		return 1
	fi
}

gib_copy_python() {
	gib__need gib_copy_python python3 dev-lang/python || return 1
	# The interpreter itself: python3 may be a symlink or, on Gentoo, python-exec's wrapper.
	gib__py_exe=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
	if [ -e "$ROOT$gib__py_exe" ]; then
		echo "gib_copy_python: $gib__py_exe is already in the image"
		return 0
	fi
	gib_install_binary "$gib__py_exe" "$gib__py_exe"
	gib__py_link=${gib__py_exe%/*}/python3
	if [ ! -e "$ROOT$gib__py_link" ] && [ ! -L "$ROOT$gib__py_link" ]; then
		ln -s "${gib__py_exe##*/}" "$ROOT$gib__py_link"
	fi
	# The standard library without its tests, GUI, bundled pip and bytecode; and without the
	# builder's own packages (site-packages, Debian's dist-packages).
	for gib__py_lib in $(python3 -c 'import sysconfig
for d in sorted({sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}): print(d)'); do
		gib__copy_tree "$gib__py_lib" "$ROOT$gib__py_lib" test idlelib tkinter turtledemo \
			ensurepip lib2to3 __pycache__ site-packages dist-packages
		find "$ROOT$gib__py_lib" -name '*.so' -type f | while read -r gib__py_module; do
			gib_copy_libs "$gib__py_module"
		done
		# Bytecode for the image's paths, so a read-only container does not compile the
		# stdlib at every start. With SOURCE_DATE_EPOCH set (gib sets it) the files are
		# checked by hash, not by mtime, which the layer clamps.
		python3 -m compileall -q -j 0 -s "$ROOT" -p / "$ROOT$gib__py_lib" >/dev/null || {
			echo "gib_copy_python: cannot compile $gib__py_lib" >&2
			return 1
		}
	done
}

gib_pip_install() { # arg...
	gib__need gib_pip_install python3 dev-lang/python || return 1
	python3 -m pip --version >/dev/null 2>&1 || {
		echo "gib_pip_install: no pip for the builder's python3; add dev-python/pip to builder_packages" >&2
		return 1
	}
	# pip builds a local project in its directory (build/, *.egg-info): give it a copy.
	gib__pip_n=0
	for gib__pip_arg in "$@"; do
		if [ -d "$gib__pip_arg" ]; then
			gib__pip_n=$((gib__pip_n + 1))
			gib__pip_copy=$(gib__scratch "pip-src-$gib__pip_n")
			gib__copy_tree "$gib__pip_arg" "$gib__pip_copy"
			gib__pip_arg=$gib__pip_copy
		fi
		set -- "$@" "$gib__pip_arg"
		shift
	done
	# --root also skips PEP 668's EXTERNALLY-MANAGED check: the builder's python is untouched.
	python3 -m pip install --root "$ROOT" --no-cache-dir --disable-pip-version-check \
		--no-warn-script-location --root-user-action=ignore "$@" || {
		echo "gib_pip_install: pip install failed" >&2
		return 1
	}
}

gib_copy_node() {
	gib__need gib_copy_node node net-libs/nodejs || return 1
	gib__node=$(command -v node)
	gib_install_binary "$gib__node" "$gib__node"
	# Debian's node loads some builtins (acorn, undici, cjs-module-lexer) at start from files
	# whose paths are compiled into libnode; it aborts without them.
	for gib__node_file in "$gib__node" $(ldd "$gib__node" | awk '$1 ~ /^libnode/ { print $3 }'); do
		grep -aoE '/usr/[A-Za-z0-9_./@-]+[.]js' "$gib__node_file" || true
	done | sort -u | while read -r gib__node_builtin; do
		if [ -f "$gib__node_builtin" ]; then
			echo "gib: $gib__node_builtin (loaded by node)"
			gib__copy_file "$gib__node_builtin" "$gib__node_builtin"
		fi
	done
}

gib_npm_install() { # src dest
	gib__npm_src=${1:?gib_npm_install: usage: gib_npm_install SRC DEST}
	gib__npm_dest=${2:?gib_npm_install: usage: gib_npm_install SRC DEST}
	gib__need gib_npm_install node net-libs/nodejs || return 1
	[ -f "$gib__npm_src/package.json" ] || {
		echo "gib_npm_install: no package.json in $gib__npm_src" >&2
		return 1
	}
	gib__copy_tree "$gib__npm_src" "$ROOT$gib__npm_dest" ./node_modules
	# npm is not needed (nor run) for an app without dependencies.
	# shellcheck disable=SC2016 # JavaScript, not shell
	gib__npm_deps=$(node -e 'const p = require(process.argv[1]);
const n = (d) => Object.keys(d || {}).length;
console.log(n(p.dependencies) + n(p.optionalDependencies));' "$ROOT$gib__npm_dest/package.json")
	if [ "$gib__npm_deps" = 0 ]; then
		echo "gib_npm_install: $gib__npm_src has no dependencies; npm not run"
		return 0
	fi
	gib__need gib_npm_install npm "net-libs/nodejs (USE=npm)" || return 1
	if [ -f "$gib__npm_src/package-lock.json" ] || [ -f "$gib__npm_src/npm-shrinkwrap.json" ]; then
		gib__npm_command=ci
	else
		# Resolves every dependency, dev ones included, from the registry.
		gib__npm_command=install
	fi
	(cd "$ROOT$gib__npm_dest" && npm "$gib__npm_command" --omit=dev --no-audit --no-fund \
		--no-update-notifier --cache "$(gib__scratch npm-cache)") || {
		echo "gib_npm_install: npm $gib__npm_command failed in $ROOT$gib__npm_dest" >&2
		return 1
	}
}
