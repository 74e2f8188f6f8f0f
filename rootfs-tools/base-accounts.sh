#!/bin/sh
# base-accounts: the accounts every distroless image has (root, nobody, nonroot and their
# groups) in ROOT's /etc/passwd and /etc/group, and their home directories.
#
# build-packages.sh runs it before the first emerge into ROOT: GLEP 81 account packages
# (acct-group/*, acct-user/*) run shadow's groupadd/useradd --prefix "$ROOT" in pkg_preinst,
# and shadow cannot lock or edit an /etc/group or /etc/passwd that does not exist.
# finish-root.sh runs it again for the images no emerge filled. Entries a package or the
# parent image made are kept; nothing that is already right is touched: on a child image,
# ROOT is an overlay over the parent's files, and touching one copies it up into this
# image's layer.
set -eu

ROOT=${ROOT:-/staging}
cd "$ROOT"

set_mode() { # mode path
	[ "$(stat -c %a "$2")" = "$1" ] || chmod "$1" "$2"
}
set_owner() { # uid:gid path
	[ "$(stat -c %u:%g "$2")" = "$1" ] || chown "$1" "$2"
}
add_line() { # file name line
	grep -q "^$2:" "$1" || echo "$3" >>"$1"
}

mkdir -p etc
[ -e etc/passwd ] || : >etc/passwd
[ -e etc/group ] || : >etc/group
add_line etc/passwd root 'root:x:0:0:root:/root:/sbin/nologin'
add_line etc/passwd nobody 'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin'
add_line etc/passwd nonroot 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin'
add_line etc/group root 'root:x:0:'
add_line etc/group nobody 'nobody:x:65534:'
add_line etc/group nonroot 'nonroot:x:65532:'
set_mode 644 etc/passwd
set_mode 644 etc/group
mkdir -p home/nonroot root
set_owner 65532:65532 home/nonroot
set_mode 700 home/nonroot
set_mode 700 root
