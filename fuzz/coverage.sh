#!/bin/sh
# SPDX-License-Identifier: ISC
# coverage.sh - how much of the code each fuzz target's corpus reaches.
#
#   fuzz/coverage.sh [TARGET...]
#
# Builds the library and the targets again under build/fuzz-cov with
# clang's source-based coverage (no sanitizers: only the counts matter),
# runs each target over fuzz/corpus/NAME and build/fuzz/corpus/NAME
# (the seeds and what `make fuzz` found), and prints llvm-cov's line,
# region and branch coverage of the src/ files the target links. The
# merged profile stays in build/fuzz-cov/NAME.profdata for `llvm-cov show`.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cov=build/fuzz-cov
flags="-fprofile-instr-generate -fcoverage-mapping"
profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata)
llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov)
pkgs="libevent libevent_openssl libevent_pthreads libcares sqlite3 inih libcrypt openssl"

cd "$top"
if [ $# -eq 0 ]; then
	for src in fuzz/*.c; do
		set -- "$@" "$(basename "$src" .c)"
	done
fi

make --no-print-directory BUILD=$cov CC=clang CFLAGS="-O1 -g" TESTING= \
	SANITIZE="-fsanitize=fuzzer-no-link $flags" $cov/libdetour.a >/dev/null

for name in "$@"; do
	bin=$cov/$name
	# shellcheck disable=SC2046,SC2086 # pkg-config output and flags are lists
	clang -std=gnu11 -O1 -g -D_GNU_SOURCE -Isrc $(pkg-config --cflags $pkgs) \
		-fsanitize=fuzzer $flags -o "$bin" "fuzz/$name.c" $cov/libdetour.a \
		$(pkg-config --libs $pkgs) -lm -pthread
	rm -f "$bin".*.profraw
	dirs="fuzz/corpus/$name"
	[ -d "build/fuzz/corpus/$name" ] && dirs="$dirs build/fuzz/corpus/$name"
	# Merge mode runs the inputs in child processes and goes on after an
	# input that crashes (whose own counts are lost); -runs=0 would stop
	# there and write no profile at all.
	out=$(mktemp -d)
	# shellcheck disable=SC2086 # dirs is a list
	LLVM_PROFILE_FILE="$bin.%p.profraw" "$bin" -merge=1 "$out" $dirs >/dev/null 2>&1 || true
	rm -rf "$out"
	"$profdata" merge -sparse -o "$bin.profdata" "$bin".*.profraw
	rm -f "$bin".*.profraw
	# shellcheck disable=SC2086
	echo "== $name: $(find $dirs -type f | wc -l) inputs"
	"$llvmcov" report "$bin" -instr-profile="$bin.profdata" \
		-ignore-filename-regex='(^|/)(fuzz|usr)/' 2>/dev/null |
		awk 'NF >= 13 && $4 ~ /%$/ {
			printf "  %-28s lines %5d %7s   regions %5d %7s   branches %5d %7s\n",
				$1, $8, $10, $2, $4, $11, $13 }'
done
