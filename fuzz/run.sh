#!/bin/sh
# SPDX-License-Identifier: ISC
# run.sh - run libFuzzer targets for a bounded time each (`make fuzz`).
#
#   fuzz/run.sh BUILD_DIR [TARGET...]
#
# BUILD_DIR holds the targets (build/fuzz). Each reproducer
# fuzz/crashes/NAME-*.bin is replayed first: a known bug that is not fixed
# yet fails the run whatever the fuzzing finds. Then each target NAME runs for
# FUZZ_SECONDS (default 30) on BUILD_DIR/corpus/NAME, a writable copy of
# fuzz/corpus/NAME (the repository's seeds are never modified; new inputs
# found stay in the copy for the next run), with fuzz/dict/NAME.dict if
# there is one, fuzz/dict/smtp.dict otherwise. FUZZ_ARGS adds libFuzzer
# options. Crashes are written to BUILD_DIR/artifacts/NAME/, logs to
# BUILD_DIR/logs/NAME.log. Exits 1 if any target failed.
set -u

build=${1:?usage: fuzz/run.sh BUILD_DIR [TARGET...]}
shift
seconds=${FUZZ_SECONDS:-30}
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -eq 0 ]; then
	for src in "$here"/*.c; do
		set -- "$@" "$(basename "$src" .c)"
	done
fi

failed=""
for name in "$@"; do
	bin=$build/$name
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin not built" >&2
		failed="$failed $name"
		continue
	fi
	corpus=$build/corpus/$name
	artifacts=$build/artifacts/$name
	mkdir -p "$corpus" "$artifacts" "$build/logs"
	if [ -d "$here/corpus/$name" ]; then
		cp -p "$here/corpus/$name"/* "$corpus"/ 2>/dev/null || true
	fi
	for repro in "$here/crashes/$name"-*.bin; do
		[ -f "$repro" ] || continue
		if ! "$bin" "$repro" >"$build/logs/$name.repro.log" 2>&1; then
			echo "fuzz: $name: known reproducer crashes/$(basename "$repro") still fails"
			failed="$failed $name"
		fi
	done
	dict=$here/dict/$name.dict
	[ -f "$dict" ] || dict=$here/dict/smtp.dict
	log=$build/logs/$name.log
	printf 'fuzz: %-24s %ss ... ' "$name" "$seconds"
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
	"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-dict="$dict" -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ "$rc" -eq 0 ]; then
		echo "ok (${execs:-?} runs, ${speed:-?}/s, ${cov:-cov: ?})"
	else
		echo "FAILED (exit $rc): see $log and $artifacts/"
		grep -E 'PROPERTY VIOLATED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
			"$log" | head -n 5 | sed 's/^/    /'
		failed="$failed $name"
	fi
done

if [ -n "$failed" ]; then
	# shellcheck disable=SC2086 # one name per line, then unique
	echo "fuzz: failed:$(printf '%s\n' $failed | sort -u | tr '\n' ' ')"
	exit 1
fi
echo "fuzz: all targets passed"
