#!/bin/bash
# detourd peer (detour's own addition to peer-bench): build/detourd with a
# configuration from bench/mkconf.sh, its queue in this folder's conf/state,
# listening on 127.0.0.1:$PORT and relaying to smtp-sink on $SINK_PORT.
#
# usage: peer.sh setup|start|stop|purge|queue|accepted|port
#   DETOURD, DETOURCTL: the binaries (bench/run.sh sets them to build/...);
#   DETOUR_MKCONF: the configuration generator (bench/mkconf.sh);
#   PAUSE_DELIVERY=1: accept only (`[delivery] pause = yes`).
#
# purge: detourd keeps every message it accepted until it has delivered it,
# and a purge must not race the writer thread, so purge stops detourd, starts
# it again on a fresh, empty state folder, in the same cgroup.  run-all.sh
# purges after every run that hit its drain bound, so no run inherits the
# queue (and the database size) of the one before, and the disk use of a full
# run stays bounded by one run's messages.
set -e
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/../lib/common.sh"
# A copy of this folder under another name is another detourd column
# (bench/run.sh EXTRA_DETOURDS): its peer.env sets PORT, DETOURD, DETOURCTL
# and PAUSE_DELIVERY.
[ -f "$HERE/peer.env" ] && . "$HERE/peer.env"
PORT=${PORT:-2510}
CONF=$HERE/conf/detour.conf
DETOURD=${DETOURD:-detourd} DETOURCTL=${DETOURCTL:-detourctl}
MKCONF=${DETOUR_MKCONF:-$HERE/../../mkconf.sh}
PIDFILE=$HERE/run/detourd.pid

status_field() {  # status_field NAME: one number from `detourctl status`
    "$DETOURCTL" -c "$CONF" status 2>/dev/null | awk -v k="$1:" '$1 == k {print $2; f=1} END {exit !f}'
}

case "$1" in
setup)
    rm -rf "$HERE/conf" "$HERE/log" "$HERE/run"; mkdir -p "$HERE/log" "$HERE/run"
    PORT=$PORT SINK_PORT=$SINK_PORT DETOURD=$DETOURD PAUSE_DELIVERY=${PAUSE_DELIVERY:-} \
        "$MKCONF" "$HERE/conf" >/dev/null
    ;;
start)
    [ -f "$CONF" ] || { echo "detourd: run peer.sh setup first" >&2; exit 1; }
    # -f: stay in the foreground, log to stderr. setsid: its own process
    # group (pgid = pid), stopped as a group by `stop`.
    setsid "$DETOURD" -c "$CONF" -f >>"$HERE/log/detourd.log" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    if ! wait_port "$PORT" 20; then tail -5 "$HERE/log/detourd.log" >&2; exit 1; fi ;;
stop)
    pid=$(cat "$PIDFILE" 2>/dev/null) || true
    # stop_group only when the pid is still the leader of its own group
    if [ -n "$pid" ] && [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ]; then
        stop_group "$pid" 15
    else
        stop_pid "$pid" 15
    fi
    rm -f "$PIDFILE" ;;
purge)
    "$0" stop
    PORT=$PORT SINK_PORT=$SINK_PORT PAUSE_DELIVERY=${PAUSE_DELIVERY:-} \
        "$MKCONF" "$HERE/conf" >/dev/null   # empty state/
    ( cg_enter "$(basename "$HERE")"; exec "$0" start ) ;;
queue)    status_field queue_messages ;;
accepted) status_field messages_accepted ;;
port) echo "$PORT" ;;
*) echo "usage: $0 setup|start|stop|purge|queue|accepted|port" >&2; exit 2 ;;
esac
