# shellcheck shell=sh
# shellcheck disable=SC2034,SC2154 # sets $gib and reads $top for the script that sources it
# Sourced by the benches: builds gib (release) into $gib and finds the mini stage3 into
# $stage3: the test suite's (amd64, named by its inputs' 16-hex hash) when it is there, else
# the quickstart's, built once. Expects $top, the repository's root.
cargo build --release --locked --quiet
gib=$top/target/release/gib

hex='[0-9a-f]'
hash16=$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex$hex
stage3=$(ls "$top"/target/gib-fixtures/mini-stage3-$hash16.tar.zst 2>/dev/null | head -n 1)
[ -n "$stage3" ] || stage3=$top/target/gib-fixtures/mini-stage3.tar.zst
if [ ! -e "$stage3" ]; then
	mkdir -p "$top/target/gib-fixtures"
	"$top/tests/fixtures/mini-stage3/build.sh" "$stage3"
fi
