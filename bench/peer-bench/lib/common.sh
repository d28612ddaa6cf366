# Shared settings/helpers for the peer benchmark (sourced by every script).
# All traffic stays on 127.0.0.1; run-all.sh additionally runs everything in
# a private network namespace that only has the loopback interface.
PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SINK_PORT=${SINK_PORT:-2526}          # every peer relays to smtp-sink here
BENCH_HELO=bench.localdomain          # fixed names: nothing needs DNS
# Per-peer cgroup = CPU + process list. cgroup v1 (cpuacct) where it is
# mounted, else the unified v2 hierarchy (Debian 12's default): its
# cpu.stat usage_usec is always there, with no controller to enable.
# (detour: v2 support added; upstream peer-bench only knew v1.)
if [ -n "$SMTPBENCH_CGROUP_BASE" ]; then
    CG_BASE=$SMTPBENCH_CGROUP_BASE    # e.g. /sys/fs/cgroup/unified (hybrid)
elif [ -d /sys/fs/cgroup/cpuacct ]; then
    CG_BASE=/sys/fs/cgroup/cpuacct
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG_BASE=/sys/fs/cgroup
else
    CG_BASE=/nonexistent                # no cgroups: no CPU/memory rows
fi
CG_ROOT=$CG_BASE/smtpbench

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# wait_port PORT [SECONDS]: wait until something accepts on 127.0.0.1:PORT
wait_port() {
    local i
    for ((i = 0; i < ${2:-20} * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 did not open" >&2; return 1
}

# cg_enter NAME: move the calling (sub)shell into cgroup NAME; everything it
# starts afterwards (daemon, forks, re-execs) is accounted there.
cg_enter() {
    [ -d "$CG_BASE" ] || return 0
    mkdir -p "$CG_ROOT/$1" 2>/dev/null || return 0
    echo "$BASHPID" > "$CG_ROOT/$1/cgroup.procs" 2>/dev/null || true
}
cg_remove() { [ -d "$CG_ROOT/$1" ] && rmdir "$CG_ROOT/$1" 2>/dev/null; true; }

# stop_pid PID [SECONDS]: TERM a process we started, then KILL it if needed
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < ${2:-10} * 10; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null; true
}

# stop_group PGID [SECONDS]: same for a process group we created with setsid
stop_group() {
    local pg=$1 i
    [ -n "$pg" ] && kill -0 -- "-$pg" 2>/dev/null || return 0
    kill -TERM -- "-$pg" 2>/dev/null
    for ((i = 0; i < ${2:-10} * 10; i++)); do kill -0 -- "-$pg" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$pg" 2>/dev/null; true
}

# ensure_user NAME: create a system user/group (daemons' privsep users)
ensure_user() {
    id "$1" >/dev/null 2>&1 && return 0
    getent group "$1" >/dev/null || groupadd --system "$1"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -g "$1" "$1"
}
