#!/bin/bash
# install.sh: build the two small helpers and check the tools the benchmark
# runs.  detour's copy installs nothing: the packages (postfix for
# smtp-source/smtp-sink, with service start blocked; python3, strace,
# util-linux, iproute2, procps) come from `scripts/deps.sh bench`, which
# `make bench` runs first.  Idempotent; safe to re-run.
set -e
HERE=$(cd "$(dirname "$0")" && pwd); . "$HERE/lib/common.sh"

missing=""
for tool in smtp-source smtp-sink postfix postconf python3 strace gcc unshare ip script; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    echo "install: missing:$missing (run scripts/deps.sh bench as root)" >&2
    exit 1
fi

# helper binaries
gcc -O2 -pthread -o "$HERE/lib/fsync-rate" "$HERE/lib/fsync-rate.c"
gcc -O2 -shared -fPIC -o "$HERE/lib/backlog-shim.so" "$HERE/lib/backlog-shim.c" -ldl
echo "install: ok: postfix $(postconf -dh mail_version), helpers built" >&2
