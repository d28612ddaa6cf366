#!/bin/bash
# bench/profile.sh - where does detourd spend its time per message?
#
#   bench/profile.sh [plain|perf|strace|callgrind] [SESSIONS] [MESSAGES] [SIZE]
#   (defaults: perf 20 20000 4096)
#
# Starts smtp-sink on 127.0.0.1:2526 and build/detourd (or $DETOURD) on a
# fresh bench/mkconf.sh configuration inside a private network namespace (only
# loopback; the peer-bench DNS stub answers on 127.0.0.1:53), sends MESSAGES
# messages of SIZE bytes with smtp-source over SESSIONS sessions (bounded by
# count and by a 300 s timeout), waits (at most 60 s) until the sink has them
# all when detourd delivers, and reports messages/s, detourd's CPU ms per message, the
# client's (smtp-source's) CPU ms per message and how busy the whole machine
# was, then:
#   plain      nothing more (no profiler attached: the cleanest numbers)
#   perf       perf record -g of detourd, then the top of perf report
#              (self time, and children); perf.data is kept in the output folder
#   strace     strace -c -f: system calls per message, by thread
#   callgrind  valgrind --tool=callgrind (slow: keep MESSAGES small)
# Output goes to bench/results/profile-<time>/ (or $OUT). Root only.
# DETOURD_LOG: where detourd's log goes (default $OUT/detourd.log; /dev/null
# to see what writing the log costs). PAUSE_DELIVERY=1: accept only (a build
# that delivers then keeps every message queued).
set -eu
BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
MODE=${1:-perf} SESSIONS=${2:-20} MESSAGES=${3:-20000} SIZE=${4:-4096}
DETOURD=${DETOURD:-$REPO/build/detourd}
OUT=${OUT:-$BENCH/results/profile-$(date +%Y%m%d-%H%M%S)}

if [ "${SMTPBENCH_SANDBOX:-}" != 1 ]; then
	[ "$(id -u)" = 0 ] || { echo "profile.sh: run as root" >&2; exit 1; }
	[ -x "$DETOURD" ] || { echo "profile.sh: $DETOURD missing (make all)" >&2; exit 1; }
	case $MODE in
	plain) ;;
	perf) command -v perf >/dev/null || { echo "profile.sh: perf is not installed" >&2; exit 1; } ;;
	strace) command -v strace >/dev/null || { echo "profile.sh: strace is not installed" >&2; exit 1; } ;;
	callgrind) command -v valgrind >/dev/null || { echo "profile.sh: valgrind is not installed" >&2; exit 1; } ;;
	*) echo "usage: $0 [perf|strace|callgrind] [SESSIONS] [MESSAGES] [SIZE]" >&2; exit 2 ;;
	esac
	mkdir -p "$OUT"
	export DETOURD OUT
	# sandbox.sh: private net + mount namespace, loopback only, DNS stub
	exec "$BENCH/peer-bench/lib/sandbox.sh" "$0" "$@"
fi

WORK=$(mktemp -d "${BENCH_WORK:-/var/tmp}/detour-profile.XXXXXX")
chmod 755 "$WORK"
conf=$("$BENCH/mkconf.sh" "$WORK")
PIDS=()
cleanup() {
	set +e
	for pg in "${PIDS[@]}"; do
		kill -TERM -- "-$pg" 2>/dev/null
		for _ in $(seq 100); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- "-$pg" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

wrap=()
case $MODE in
callgrind) wrap=(valgrind --tool=callgrind "--callgrind-out-file=$OUT/callgrind.out.%p") ;;
esac
setsid smtp-sink -c -u nobody 127.0.0.1:2526 1024 >"$WORK/sink.out" 2>&1 </dev/null &
PIDS+=($!)
sink_count() { tr '\r' '\n' <"$WORK/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
setsid "${wrap[@]}" "$DETOURD" -c "$conf" -f >"${DETOURD_LOG:-$OUT/detourd.log}" 2>&1 </dev/null &
PIDS+=($!)
dpid=$!
for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/2510) 2>/dev/null && break; sleep 0.1; done
# the real detourd process (under valgrind the pid is valgrind's = detourd's)
sleep 0.2

src() {  # src COUNT: one bounded smtp-source run
	timeout 300 smtp-source -M bench.localdomain -s "$SESSIONS" -m "$1" -l "$SIZE" \
		-f a@example.com -t b@example.org 127.0.0.1:2510
}
src 200   # warm-up
if [ -z "${PAUSE_DELIVERY:-}" ]; then   # let the warm-up drain (bounded)
	for _ in $(seq 100); do [ "$(sink_count)" = 200 ] && break; sleep 0.1; done
fi
n0=$(sink_count)
case $MODE in
perf)
	perf record -g -o "$OUT/perf.data" -p "$dpid" 2>"$OUT/perf-record.err" &
	ppid=$!
	sleep 0.5 ;;
strace)
	strace -c -f -o "$OUT/strace-c.txt" -p "$dpid" 2>/dev/null &
	ppid=$!
	sleep 1 ;;
*) ppid= ;;
esac
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
# children's CPU (smtp-source, through timeout): `times` in this very shell
# (a function runs in this shell; $(times) would ask a subshell)
ccpu() { times > "$WORK/times"; }
ctime() { awk 'NR == 2 {gsub(/[ms]/, " "); print ($1 * 60 + $2) + ($3 * 60 + $4)}' "$WORK/times"; }
t0=$(date +%s.%N)
cpu0=$(awk '{print $14 + $15}' "/proc/$dpid/stat")
ccpu; s0=$(ctime)
m0=$(busy)
src "$MESSAGES"
t1=$(date +%s.%N)
# a build that delivers: wait until the sink has them all (at most 60 s)
for i in $(seq 600); do
	got=$(( $(sink_count) - ${n0:-0} ))
	[ "$got" -ge "$MESSAGES" ] && break
	[ -n "${PAUSE_DELIVERY:-}" ] && break
	[ "$i" -ge 50 ] && [ "$got" -le 0 ] && break   # a build that does not deliver
	sleep 0.1
done
t2=$(date +%s.%N)
delivered=$(( $(sink_count) - ${n0:-0} ))
cpu1=$(awk '{print $14 + $15}' "/proc/$dpid/stat")
ccpu; s1=$(ctime)
m1=$(busy)
if [ -n "$ppid" ]; then kill -INT "$ppid"; wait "$ppid" || true; fi
tck=$(getconf CLK_TCK)
awk -v n="$MESSAGES" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v d="$delivered" \
	-v c0="$cpu0" -v c1="$cpu1" -v hz="$tck" \
	-v m0="$m0" -v m1="$m1" -v s0="$s0" -v s1="$s1" -v ncpu="$(nproc)" 'BEGIN {
	split(m0, a, " "); split(m1, b, " ")
	printf "messages=%d seconds=%.2f accepted_msg_per_s=%.0f delivered=%d (%.2f s after) " \
	       "detourd_cpu_ms_per_msg=%.3f smtp_source_cpu_ms_per_msg=%.3f machine_busy=%.0f%% of %d cpus\n",
	       n, t1 - t0, n / (t1 - t0), d, t2 - t1, (c1 - c0) / hz * 1000 / n, (s1 - s0) * 1000 / n,
	       100 * (b[1] - a[1]) / (b[2] - a[2]), ncpu }' | tee "$OUT/summary.txt"

case $MODE in
perf)
	perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
		grep -v '^$' | head -120 > "$OUT/perf-self.txt"
	perf report -i "$OUT/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
		grep -v '^$' | head -120 > "$OUT/perf-children.txt"
	perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null |
		grep -v '^$' | head -40 > "$OUT/perf-dso.txt"
	head -60 "$OUT/perf-self.txt" ;;
strace)
	cat "$OUT/strace-c.txt" ;;
callgrind)
	kill -TERM -- "-$dpid" 2>/dev/null; sleep 3
	f=$(ls "$OUT"/callgrind.out.* | head -1)
	callgrind_annotate "$f" 2>/dev/null | head -60 | tee "$OUT/callgrind-top.txt" ;;
esac
echo "profile.sh: output in $OUT" >&2
