#!/bin/sh
# SPDX-License-Identifier: ISC
# coverage.sh - how much of the code each fuzz target's corpus reaches.
#
#   fuzz/coverage.sh [TARGET...]
#
# Builds the library and the targets again under build/fuzz-cov with
# clang's source-based coverage (no sanitizers: only the counts matter),
# runs each target once over fuzz/corpus/NAME and build/fuzz/corpus/NAME
# (the seeds and what `make fuzz` found), and prints llvm-cov's line and
# region coverage of the src/ files the target links. The merged profile
# stays in build/fuzz-cov/NAME.profdata for `llvm-cov show`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cov=build/fuzz-cov
flags="-fprofile-instr-generate -fcoverage-mapping"
profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata)
llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov)

cd "$top"
if [ $# -eq 0 ]; then
	for src in fuzz/*.c; do
		set -- "$@" "$(basename "$src" .c)"
	done
fi

make --no-print-directory BUILD=$cov CC=clang CFLAGS="-O1 -g" TESTING= \
	SANITIZE="-fsanitize=fuzzer-no-link $flags" $cov/libdetour.a >/dev/null
pkgs="libevent libevent_openssl libevent_pthreads libcares sqlite3 inih libcrypt openssl"
# shellcheck disable=SC2046 # word splitting of pkg-config output is wanted
libs="$(pkg-config --libs $pkgs) -lm -pthread"

for name in "$@"; do
	bin=$cov/$name
	# shellcheck disable=SC2086
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -Isrc $(pkg-config --cflags $pkgs) \
		-fsanitize=fuzzer $flags -o "$bin" "fuzz/$name.c" $cov/libdetour.a $libs
	rm -f "$bin".*.profraw
	dirs="fuzz/corpus/$name"
	[ -d "build/fuzz/corpus/$name" ] && dirs="$dirs build/fuzz/corpus/$name"
	# shellcheck disable=SC2086
	LLVM_PROFILE_FILE="$bin.%p.profraw" "$bin" -runs=0 $dirs >/dev/null 2>&1 || true
	"$profdata" merge -sparse -o "$bin.profdata" "$bin".*.profraw
	rm -f "$bin".*.profraw
	echo "== $name ($(cat $dirs/* 2>/dev/null | wc -c) octets in $(find $dirs -type f | wc -l) inputs)"
	"$llvmcov" report "$bin" -instr-profile="$bin.profdata" -ignore-filename-regex='^(fuzz|/usr)/' \
		-show-region-summary=true -show-functions=false 2>/dev/null |
		awk 'NR == 1 || /^src\// || /^TOTAL/ { print }' |
		awk '{ printf "%-36s regions %6s %7s   lines %6s %7s\n", $1, $2, $4, $(NF-3), $(NF-1) }' |
		grep -v '  0 ' || true
done
