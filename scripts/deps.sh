#!/bin/sh
# deps.sh - install the Debian packages detour needs, and only those missing.
#
#   scripts/deps.sh build          compiler and libraries for `make`
#   scripts/deps.sh test           build + everything `make test` uses
#   scripts/deps.sh bench          build + the benchmark's peers (Postfix)
#   scripts/deps.sh run            build + openssl and swaks for `make run`
#   scripts/deps.sh fuzz           build + clang, libFuzzer and llvm tools for `make fuzz`
#
# Postfix is installed for its smtp-source and smtp-sink tools only. Its
# package would start a Postfix on port 25; a policy-rc.d that exits 101
# keeps every service from starting during the install (Debian's protocol).
set -eu

build="gcc make pkg-config libc6-dev libevent-dev libssl-dev libc-ares-dev
       libsqlite3-dev libcrypt-dev libinih-dev"
test="libcmocka-dev python3 python3-pytest python3-aiosmtpd python3-dnslib
      swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl msmtp curl
      openssl sqlite3 postfix iproute2 procps iptables nmap util-linux strace"
bench="postfix python3 strace util-linux iproute2 procps"
run="openssl swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl"
fuzz="clang libclang-rt-14-dev llvm-14"

want=$build
for group in "$@"; do
	case $group in
	build) ;;
	test) want="$want $test" ;;
	bench) want="$want $bench" ;;
	run) want="$want $run" ;;
	fuzz) want="$want $fuzz" ;;
	*) echo "deps.sh: unknown group '$group' (build, test, bench, run, fuzz)" >&2; exit 2 ;;
	esac
done

missing=""
for pkg in $want; do
	status=$(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null || true)
	case $status in
	*" installed") ;;
	*) case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run as root, or install them with apt-get" >&2
	exit 1
fi

echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
made_policy=""
if ! grep -qs 'exit 101' /usr/sbin/policy-rc.d; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	made_policy=yes
fi
cleanup() { [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d; }
trap cleanup EXIT
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
