#!/bin/sh
# run.sh BUILD_DIR - run every unit test binary and the integration suite
# against the programs in BUILD_DIR, then print "N passed, N failed".
#
# Unit tests are cmocka programs (TAP output, one process each, with a time
# limit). Integration tests are pytest suites under tests/integration, run by
# Debian's interpreter (/usr/bin/python3). Extra pytest arguments can be
# given in PYTEST_ARGS (for example PYTEST_ARGS="-k crash").
set -u
build=${1:-build/asan}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
passed=0
failed=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Sanitizer reports make the process fail; leaks are reported too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" > "$log/$name.out" 2>&1
	rc=$?
	ok=$(grep -c '^ok ' "$log/$name.out")
	bad=$(grep -c '^not ok ' "$log/$name.out")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		# crashed, timed out or a sanitizer fired outside a test
		bad=1
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	if [ "$bad" -ne 0 ]; then
		echo "FAIL unit $name (exit $rc):"
		sed 's/^/    /' "$log/$name.out" | tail -n 40
	else
		echo "ok   unit $name ($ok tests)"
	fi
done

if [ -d tests/integration ]; then
	DETOUR_BUILD="$top/$build" /usr/bin/python3 -m pytest -p no:cacheprovider -q \
		--junitxml="$log/pytest.xml" ${PYTEST_ARGS:-} tests/integration
	counts=$(/usr/bin/python3 - "$log/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 1"); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = f = e = s = 0
for su in suites:
    t += int(su.get("tests", 0)); f += int(su.get("failures", 0))
    e += int(su.get("errors", 0)); s += int(su.get("skipped", 0))
# a skipped test did not pass: count it as failed so it cannot hide
print(t - f - e - s, f + e + s)
PY
)
	passed=$((passed + ${counts% *}))
	failed=$((failed + ${counts#* }))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
