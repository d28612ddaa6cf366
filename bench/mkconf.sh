#!/bin/sh
# mkconf.sh [DIR] - write a detourd configuration for the benchmark.
#
# Creates DIR (a fresh `mktemp -d` when not given), an empty state folder
# DIR/state for the queue, and DIR/detour.conf; prints the configuration's
# path. The server listens on 127.0.0.1:2510 without TLS or AUTH, trusts
# 127.0.0.0/8 to relay, and would deliver everything to smtp-sink on
# 127.0.0.1:2526, asking the benchmark's DNS stub on 127.0.0.1:53 (never the
# system resolver).
#
#   conf=$(bench/mkconf.sh) && build/detourd -c "$conf" -f
#
# Environment: DETOURD (a detourd binary; when set, the file is checked with
# `detourd -c FILE -n`), PORT (2510), SINK_PORT (2526), PAUSE_DELIVERY=1
# (adds `[delivery] pause = yes`: accept only, for profiling the accept path).
set -eu

dir=${1:-}
if [ -z "$dir" ]; then
	dir=$(mktemp -d "${TMPDIR:-/var/tmp}/detour-bench-conf.XXXXXX")
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/state"
mkdir -m 700 "$dir/state"

# The control socket lives in the state folder; sun_path is short.
if [ ${#dir} -gt 80 ]; then
	echo "mkconf.sh: $dir is too long for the control socket path" >&2
	exit 1
fi

conf=$dir/detour.conf
cat > "$conf" <<EOF
; detourd benchmark configuration, written by bench/mkconf.sh.
[server]
hostname  = bench.localdomain
state_dir = $dir/state
trusted   = 127.0.0.0/8

[listener bench]
listen = 127.0.0.1:${PORT:-2510}
tls    = none
auth   = off

[delivery]
resolver          = 127.0.0.1:53     ; the benchmark's DNS stub, in its namespace
mx_port           = ${SINK_PORT:-2526}   ; smtp-sink
allow_loopback_mx = yes
${PAUSE_DELIVERY:+pause             = yes}

[limits]
; peer-bench holds 1,000 idle connections and runs 100 sessions, all
; from 127.0.0.1: neither cap may be what is measured.
max_connections        = 5000
max_connections_per_ip = 5000
EOF

if [ -n "${DETOURD:-}" ]; then
	"$DETOURD" -c "$conf" -n >/dev/null
fi
echo "$conf"
