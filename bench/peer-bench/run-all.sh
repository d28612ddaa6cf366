#!/bin/bash
# run-all.sh: set up, measure and tear down all peers; prints one table
# (medians over REPS interleaved repetitions) and keeps raw JSON lines.
# (detour's copy: see ../README.md; bench/run.sh is the entry point.)
#
#   run-all.sh                             # whole suite
#   QUICK=1 run-all.sh                     # 1 rep, short runs (smoke test)
#
# Knobs (env): PEERS="postfix detourd" (folders with a peer.sh:
#   setup|start|stop|port[|rcpt|purge|accepted]); REPS=3; SECS=2 (acceptance
#   time box per run); SESSIONS="1 20 100"; SIZES="4096 102400";
#   IDLE_CONNS=1000; OUT=results/<time>; RATIOS="detourd/postfix" (extra
#   ratio columns in the table); SMTPBENCH_NOTE (a line for the table head).
# Another server (e.g. ours) is added by port, as one more column:
#   EXTRA_SERVERS='ours:2510:/path/to/ourd -c /path/to/conf' bench/peers/run-all.sh
#   (name:port:command; several separated by ';').  The command must stay in
#   the foreground, listen on 127.0.0.1:port, accept mail from 127.0.0.1
#   without auth and relay it to 127.0.0.1:2526; it runs inside the sandbox
#   below and is stopped by its process group at the end.
#
# Everything runs inside lib/sandbox.sh: a private network namespace with only
# loopback, /etc/resolv.conf -> 127.0.0.1 (lib/dns-stub.py) - no traffic
# can leave the machine.
set -e
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib/common.sh"
PEERS=${PEERS:-postfix detourd}
if [ "$SMTPBENCH_SANDBOX" != 1 ]; then
    # helpers and tool check (packages come from scripts/deps.sh bench)
    [ -x "$HERE/lib/fsync-rate" ] && [ -f "$HERE/lib/backlog-shim.so" ] &&
        command -v smtp-source >/dev/null || "$HERE/install.sh"
    export OUT=${OUT:-$HERE/results/$(date +%Y%m%d-%H%M%S)}
    mkdir -p "$OUT"
    export SMTPBENCH_DNS_LOG=$OUT/dns-queries.txt
    exec "$HERE/lib/sandbox.sh" "$0" "$@"
fi

if [ -n "$QUICK" ]; then REPS=${REPS:-1} SECS=${SECS:-1.5} IDLE_REPS=${IDLE_REPS:-1}; fi
REPS=${REPS:-3} SECS=${SECS:-2} IDLE_REPS=${IDLE_REPS:-$REPS}
SESSIONS=${SESSIONS:-1 20 100} SIZES=${SIZES:-4096 102400} IDLE_CONNS=${IDLE_CONNS:-1000}
RAW=$OUT/raw.jsonl
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # idle-connection test needs >2000 fds
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)   # a shared machine: say how busy it was

# ---- targets: name port rcpt cgroup ---------------------------------------
declare -a T_NAME T_PORT T_RCPT T_ACC
EXTRA_PIDS=()
cleanup() {
    set +e
    for p in $PEERS; do "$HERE/$p/peer.sh" stop >/dev/null 2>&1; done
    for pg in "${EXTRA_PIDS[@]}"; do stop_group "$pg" 10; done
    stop_pid "$SINK_PID" 5
    sleep 0.5
    for n in sink $PEERS ${EXTRA_NAMES[@]}; do cg_remove "$n"; done
    rmdir "$CG_ROOT" 2>/dev/null
}
trap cleanup EXIT
trap "exit 130" INT TERM

log "sink: smtp-sink on 127.0.0.1:$SINK_PORT"
( cg_enter sink; exec smtp-sink -c -u nobody -m 1024 "127.0.0.1:$SINK_PORT" 1024 ) > "$OUT/sink.out" 2>&1 &
SINK_PID=$!
wait_port "$SINK_PORT"
T_NAME+=(sink); T_PORT+=("$SINK_PORT"); T_RCPT+=(b@example.org); T_ACC+=("")

for p in $PEERS; do
    log "$p: setup + start"
    if "$HERE/$p/peer.sh" setup && ( cg_enter "$p"; exec "$HERE/$p/peer.sh" start ); then
        T_NAME+=("$p"); T_PORT+=("$("$HERE/$p/peer.sh" port)")
        T_RCPT+=("$("$HERE/$p/peer.sh" rcpt 2>/dev/null || echo b@example.org)")
        # a peer that counts the messages it acknowledged (peer.sh accepted)
        if "$HERE/$p/peer.sh" accepted >/dev/null 2>&1; then
            T_ACC+=("'$HERE/$p/peer.sh' accepted"); else T_ACC+=(""); fi
    else
        log "$p: FAILED to start, skipped"; echo "{\"name\":\"$p\",\"failed\":\"start\"}" >> "$RAW"
    fi
done
EXTRA_NAMES=()
IFS=';' read -ra extras <<< "${EXTRA_SERVERS:-}"
for spec in "${extras[@]}"; do
    [ -n "$spec" ] || continue
    name=${spec%%:*} rest=${spec#*:}; port=${rest%%:*} cmd=${rest#*:}
    log "$name: start '$cmd'"
    ( cg_enter "$name"; exec setsid bash -c "exec $cmd" ) > "$OUT/$name.log" 2>&1 &
    EXTRA_PIDS+=($!); EXTRA_NAMES+=("$name")
    if wait_port "$port" 30; then T_NAME+=("$name"); T_PORT+=("$port"); T_RCPT+=(b@example.org); T_ACC+=(""); fi
done
N=${#T_NAME[@]}

measure() {  # measure IDX extra-args...
    local i=$1; shift
    python3 "$HERE/lib/measure.py" --name "${T_NAME[$i]}" --port "${T_PORT[$i]}" \
        --rcpt "${T_RCPT[$i]}" --cgroup "$CG_ROOT/${T_NAME[$i]}" --sink-out "$OUT/sink.out" \
        --relay "$([ "${T_NAME[$i]}" = sink ] && echo 0 || echo 1)" \
        --accepted-cmd "${T_ACC[$i]}" "$@"
}

after_run() {  # after_run IDX < json: a run that hit its drain bound leaves a
    # backlog; drop it (peer.sh purge) so it cannot leak into the next run
    if grep -q drain_timeout && [ -x "$HERE/${T_NAME[$1]}/peer.sh" ]; then
        "$HERE/${T_NAME[$1]}/peer.sh" purge 2>/dev/null || true
    fi
}

# ---- physical limits: fsync rate of the disk holding the queues -----------
for ((r = 1; r <= REPS; r++)); do
    for mode in append create; do for th in 1 20; do
        "$HERE/lib/fsync-rate" "$HERE" "$th" 1 "$mode" |
            awk -v r=$r '{split($2,a,"="); split($5,b,"="); printf "{\"name\":\"disk\",\"kind\":\"fsync_%s_%s\",\"rep\":%d,\"ops_per_s\":%s}\n", $1, a[2], r, b[2]}' >> "$RAW"
    done; done
done
log "fsync rate done"

# ---- warm-up (not recorded) ------------------------------------------------
for ((i = 0; i < N; i++)); do measure "$i" --sessions 20 --secs 1 | after_run "$i"; done
log "warm-up done"

# ---- main matrix: interleaved, target order rotated every repetition -------
for ((r = 1; r <= REPS; r++)); do
    for size in $SIZES; do for s in $SESSIONS; do
        for ((k = 0; k < N; k++)); do
            i=$(( (k + r - 1) % N ))
            measure "$i" --sessions "$s" --size "$size" --secs "$SECS" --tag "rep$r" | tee -a "$RAW" | after_run "$i"
        done
    done; done
    # persistent sessions (smtp-source -d): per-message cost without connects
    for ((k = 0; k < N; k++)); do
        i=$(( (k + r - 1) % N ))
        measure "$i" --sessions 20 --size 4096 --secs "$SECS" --persist --tag "rep$r" | tee -a "$RAW" | after_run "$i"
    done
    log "repetition $r/$REPS done ($(( $(date +%s) - T0 )) s)"
done

# ---- idle connections ------------------------------------------------------
if [ "$IDLE_CONNS" -gt 0 ]; then
    for ((r = 1; r <= IDLE_REPS; r++)); do
        for ((k = 1; k < N; k++)); do
            python3 "$HERE/lib/idle-conns.py" "${T_PORT[$k]}" "$IDLE_CONNS" "$CG_ROOT/${T_NAME[$k]}" "${T_NAME[$k]}" >> "$RAW" || true
            sleep 1
        done
    done
    log "idle connections done"
fi

# ---- durability: fsync before 250? (strace, 10 messages, not timed) --------
for ((k = 1; k < N; k++)); do
    python3 "$HERE/lib/fsync-check.py" "${T_NAME[$k]}" "${T_PORT[$k]}" "${T_RCPT[$k]}" \
        "$CG_ROOT/${T_NAME[$k]}" 10 >> "$RAW" || true
done
log "fsync check done; total $(( $(date +%s) - T0 )) s"

{
    echo "machine: $(nproc) cores ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), queues on $(findmnt -n -o FSTYPE -T "$HERE" 2>/dev/null || stat -f -c %T "$HERE"); $(date -u +%Y-%m-%dT%H:%MZ)"
    [ -z "$SMTPBENCH_NOTE" ] || echo "$SMTPBENCH_NOTE"
    echo "runs: REPS=$REPS SECS=$SECS (acceptance time box), drain bound 5 s; medians; load average at start $LOAD0, at end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    RATIOS=$RATIOS python3 "$HERE/lib/summarize.py" "$RAW" "${T_NAME[@]}"
} | tee "$OUT/table.md"
echo "raw results: $RAW"
