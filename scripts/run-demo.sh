#!/bin/sh
# run-demo.sh - what `make run` does after building: a self-contained relay
# under ./run on unprivileged loopback ports, with a self-signed certificate
# and a demo account, started in the foreground.
#
#   run/detour.conf      the configuration (listeners as in SPEC.md, on
#                        loopback and ports above 10000)
#   run/cert.pem, run/key.pem   a self-signed certificate for localhost
#   run/state/           queue and account database
#   run/demo.password    the demo account's password
#
# Environment: RUN_DIR (default ./run), DETOURD / DETOURCTL (default build/).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
run=${RUN_DIR:-$top/run}
detourd=${DETOURD:-$top/build/detourd}
detourctl=${DETOURCTL:-$top/build/detourctl}
account=demo@example.org
mkdir -p "$run/state"
chmod 700 "$run/state"

if [ ! -s "$run/cert.pem" ] || [ ! -s "$run/key.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -sha256 \
		-subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$run/key.pem" -out "$run/cert.pem" 2>/dev/null
	chmod 600 "$run/key.pem"
fi

cat > "$run/detour.conf" <<CONF
; Written by \`make run\`: a demo relay on loopback. See detour.conf(5).
[server]
hostname  = localhost
state_dir = $run/state
; no trusted networks: every client must log in

[tls]
certificate = $run/cert.pem
private_key = $run/key.pem

; The ports of SPEC.md, moved above 10000 so no root is needed:
; 587 -> 10587, 465 -> 10465, 2525/1025/8025/25 -> 12525/11025/18025/10025.
[listener submission]
listen = 127.0.0.1:10587 [::1]:10587
tls    = starttls
auth   = required

[listener smtps]
listen = 127.0.0.1:10465 [::1]:10465
tls    = implicit
auth   = required

[listener alternate]
listen = 127.0.0.1:12525 127.0.0.1:11025 127.0.0.1:18025 127.0.0.1:10025
tls    = starttls
auth   = required

; The demo keeps what it accepts: nothing is sent onward until you say
; "detourctl -c $run/detour.conf delivery resume" (then it delivers to the
; recipients' MX hosts through this machine's DNS resolver).
[delivery]
pause = yes

[limits]
auth_failure_delay = 1s
CONF

"$detourd" -c "$run/detour.conf" -n >/dev/null

# The demo account: a fresh password each run, kept in run/demo.password.
"$detourctl" -c "$run/detour.conf" user del "$account" >/dev/null 2>&1 || true
password=$(head -c 15 /dev/urandom | base64 | tr '+/' 'xy')
printf '%s\n' "$password" | "$detourctl" -c "$run/detour.conf" user add "$account" --password-stdin >/dev/null
printf '%s\n' "$password" > "$run/demo.password"
chmod 600 "$run/demo.password"

cat <<MSG

detourd is starting in the foreground (Ctrl-C stops it). Listeners:
  127.0.0.1:10587  submission, STARTTLS, AUTH required   (like port 587)
  127.0.0.1:10465  implicit TLS, AUTH required           (like port 465)
  127.0.0.1:12525 11025 18025 10025  STARTTLS            (like 2525, 1025, 8025, 25)

Demo account: $account   password: $password

Send a test message from another terminal:
  swaks --server 127.0.0.1:10587 --tls --auth PLAIN \\
        --auth-user $account --auth-password '$password' \\
        --from $account --to someone@example.com

Then look at the queue (delivery is paused in the demo):
  $detourctl -c $run/detour.conf queue list
  $detourctl -c $run/detour.conf queue cat ID
To really send what is queued to the recipients' mail servers:
  $detourctl -c $run/detour.conf delivery resume

MSG
exec "$detourd" -c "$run/detour.conf" -f
