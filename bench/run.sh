#!/bin/bash
# bench/run.sh - detourd beside Postfix and smtp-sink on this machine.
#
#   make bench                  # deps (scripts/deps.sh bench), build, this
#   bench/run.sh                # the same, once build/detourd exists
#   QUICK=1 bench/run.sh        # one short repetition (smoke test, ~2 min)
#   REPS=5 SIZES=4096 bench/run.sh
#
# Runs as root: the measurement happens inside a private network namespace
# (only loopback, a DNS stub on 127.0.0.1:53) and uses cgroups for CPU time.
# The vendored peer-bench (bench/peer-bench, see bench/README.md) is copied
# to a world-searchable work folder on a real disk (/var/tmp; Postfix's
# daemons must reach their queue there, and a tmpfs would make every fsync
# free), the helpers are compiled there, and the table and raw JSON lines are
# written to bench/results/<time>/.
#
# Knobs (environment): REPS (3), SECS (2), SESSIONS ("1 20 100"),
# SIZES ("4096 102400"), IDLE_CONNS (1000), QUICK, PEERS ("postfix detourd"),
# OUT (bench/results/<time>), BENCH_WORK (the work folder's parent, /var/tmp),
# KEEP_WORK=1 (keep the work folder: queues, logs), DETOURD (build/detourd),
# PAUSE_DELIVERY=1 (detourd accepts only), RATIOS ("detourd/postfix
# detourd/sink"), EXTRA_DETOURDS: more detourd columns, measured in the same
# interleaved rounds, "NAME=BINARY[,pause] ..." - e.g. a build from another
# commit, or the same build with delivery paused:
#   EXTRA_DETOURDS="base=/tmp/old/build/detourd acceptonly=build/detourd,pause"
set -eu

BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)

if [ "$(id -u)" != 0 ]; then
	echo "bench/run.sh: run as root (network namespace, cgroups)" >&2
	exit 1
fi
export DETOURD=${DETOURD:-$REPO/build/detourd}
export DETOURCTL=${DETOURCTL:-$(dirname "$DETOURD")/detourctl}
for bin in "$DETOURD" "$DETOURCTL"; do
	if [ ! -x "$bin" ]; then
		echo "bench/run.sh: $bin is missing; run 'make bench' (or 'make all' first)" >&2
		exit 1
	fi
done
if ! command -v smtp-source >/dev/null || ! command -v smtp-sink >/dev/null; then
	echo "bench/run.sh: smtp-source/smtp-sink missing; run scripts/deps.sh bench as root" >&2
	exit 1
fi

parent=${BENCH_WORK:-/var/tmp}
WORK=$(mktemp -d "$parent/detour-bench.XXXXXX")
chmod 755 "$WORK"
cleanup() {
	if [ "${KEEP_WORK:-}" = 1 ]; then
		echo "bench/run.sh: work folder kept: $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
fstype=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
case $fstype in
tmpfs | ramfs | overlayfs)
	echo "bench/run.sh: warning: $WORK is on $fstype: fsync numbers will not mean" \
		"durable; set BENCH_WORK to a folder on a disk" >&2 ;;
esac

# Everything peer-bench writes (configurations, queues, logs, helper
# binaries) goes into the copy, never into the source tree.
cp -r "$BENCH/peer-bench" "$WORK/"
chmod -R a+rX "$WORK"
export DETOUR_MKCONF=$BENCH/mkconf.sh

export OUT=${OUT:-$BENCH/results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

rev=unknown
if command -v git >/dev/null && git -C "$REPO" rev-parse --verify -q HEAD >/dev/null 2>&1; then
	rev=$(git -C "$REPO" rev-parse --short=12 HEAD)
	# --no-optional-locks: never rewrite the index of a shared work tree
	git -C "$REPO" --no-optional-locks diff-index --quiet HEAD -- src 2>/dev/null ||
		rev="$rev+uncommitted-src-changes"
fi
cmd=""
for v in REPS SECS SESSIONS SIZES IDLE_CONNS QUICK PEERS PAUSE_DELIVERY EXTRA_DETOURDS; do
	[ -z "${!v:-}" ] || cmd="$cmd$v=\"${!v}\" "
done
[ "$DETOURD" -ef "$REPO/build/detourd" ] && what="detourd $rev" ||
	what="detourd $DETOURD (not this tree's build/detourd; tree at $rev)"
version=$("$DETOURD" -V 2>&1 | head -1)
pfversion=$(postconf -dh mail_version 2>/dev/null || echo '?')
SMTPBENCH_NOTE="$what, $version, postfix $pfversion; command: ${cmd}bench/run.sh"
export SMTPBENCH_NOTE
export PEERS=${PEERS:-postfix detourd}
port=2511
for spec in ${EXTRA_DETOURDS:-}; do
	name=${spec%%=*} rest=${spec#*=}
	bin=${rest%%,*} opt=""
	[ "$rest" = "$bin" ] || opt=${rest#*,}
	case $name in "" | *[!a-z0-9-]* | sink | postfix | detourd)
		echo "bench/run.sh: bad EXTRA_DETOURDS name '$name'" >&2; exit 2 ;;
	esac
	bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
	[ -x "$bin" ] || { echo "bench/run.sh: $bin is not executable" >&2; exit 2; }
	cp -r "$WORK/peer-bench/detourd" "$WORK/peer-bench/$name"
	{
		echo "PORT=$port"
		echo "DETOURD='$bin'"
		echo "DETOURCTL='$(dirname "$bin")/detourctl'"
		if [ "$opt" = pause ]; then echo "PAUSE_DELIVERY=1"; else echo "PAUSE_DELIVERY="; fi
	} > "$WORK/peer-bench/$name/peer.env"
	PEERS="$PEERS $name" port=$((port + 1))
	SMTPBENCH_NOTE="$SMTPBENCH_NOTE; $name: $bin${opt:+ ($opt)}"
done
export RATIOS=${RATIOS:-detourd/postfix detourd/sink}

echo "bench/run.sh: work folder $WORK ($fstype), results in $OUT" >&2
rc=0
"$WORK/peer-bench/run-all.sh" || rc=$?

# keep the end of each server's log beside the results
for f in "$WORK"/peer-bench/*/log/*; do
	[ -f "$f" ] || continue
	peer=$(basename "$(dirname "$(dirname "$f")")")
	tail -n 200 "$f" > "$OUT/$peer-$(basename "$f").tail" 2>/dev/null || true
done
[ -f "$OUT/table.md" ] && echo "bench/run.sh: table in $OUT/table.md" >&2

# A detourd that answers 250 before an fsync breaks the promise behind 250:
# its speed means nothing, so the run fails, loudly.
if [ -f "$OUT/raw.jsonl" ] && ! /usr/bin/python3 - "$OUT/raw.jsonl" <<'PY'
import json, sys
bad = []
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if "fsyncs_before_ack_per_msg" in r and r.get("name") not in ("postfix", "sink") \
            and r["fsyncs_before_ack_per_msg"] < 1:
        bad.append("%s: %s fsyncs before 250 per message" % (r["name"], r["fsyncs_before_ack_per_msg"]))
for b in bad:
    print("bench/run.sh: DURABILITY VIOLATED: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
then
	rc=1
fi
exit $rc
