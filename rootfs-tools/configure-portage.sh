#!/bin/sh
# configure-portage: install the Portage files gib generated from gib.yaml into the builder.
#
# Runs inside the builder root before emerge. The stage3's own make.conf is kept (its
# COMMON_FLAGS, CHOST and the like) and gib's fragment is appended to it; the original is
# saved once as make.conf.stage3 so a child image's builder, which starts from its parent's,
# does not stack fragments. Inputs come read-only from $GIB_INPUT (default /var/tmp/gib).
set -eu

input=${GIB_INPUT:-/var/tmp/gib}
etc=/etc/portage

mkdir -p "$etc"
if [ ! -f "$etc/make.conf.stage3" ]; then
	if [ -f "$etc/make.conf" ]; then
		cp -p "$etc/make.conf" "$etc/make.conf.stage3"
	else
		: >"$etc/make.conf.stage3"
	fi
fi
{
	cat "$etc/make.conf.stage3"
	echo
	cat "$input/portage/make.conf"
} >"$etc/make.conf"

# package.use, package.accept_keywords and package.license may be files or directories in a stage3; gib's
# settings go in a directory so they sit beside the user's own.
as_directory() {
	if [ -f "$1" ]; then
		mv "$1" "$1.stage3"
		mkdir -p "$1"
		mv "$1.stage3" "$1/00-stage3"
	fi
	mkdir -p "$1"
}
as_directory "$etc/package.use"
cp "$input/portage/package.use" "$etc/package.use/zz-gib"
as_directory "$etc/package.accept_keywords"
cp "$input/portage/package.accept_keywords" "$etc/package.accept_keywords/zz-gib"
as_directory "$etc/package.license"
cp "$input/portage/package.license" "$etc/package.license/zz-gib"
if [ -s "$input/portage/repos.conf" ]; then
	as_directory "$etc/repos.conf"
	cp "$input/portage/repos.conf" "$etc/repos.conf/zz-gib.conf"
fi
# binrepos.conf: gib's binhost, if any, and only it. A stage3's own (catalyst writes one
# naming Gentoo's binhost) is set aside once as binrepos.conf.stage3, or emerge --getbinpkg
# would also fetch from there. Without a binhost nothing changes: emerge reads binrepos.conf
# only with --getbinpkg, which gib passes only with a binhost.
if [ -s "$input/portage/binrepos.conf" ]; then
	if [ -e "$etc/binrepos.conf" ] && [ ! -e "$etc/binrepos.conf.stage3" ]; then
		mv "$etc/binrepos.conf" "$etc/binrepos.conf.stage3"
	fi
	rm -rf "$etc/binrepos.conf"
	mkdir -p "$etc/binrepos.conf"
	cp "$input/portage/binrepos.conf" "$etc/binrepos.conf/gib.conf"
fi
