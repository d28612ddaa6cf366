# SPDX-License-Identifier: ISC
"""dnsserver.py - a small authoritative DNS server for tests, on loopback.

It answers from a zone given as JSON, over UDP and TCP, so that detourd and
the unit tests resolve MX, A and AAAA names without ever asking the system's
resolver (DESIGN.md, "Network rules"). It can also misbehave on purpose, per
name: SERVFAIL, REFUSED, NXDOMAIN, a slow answer or no answer at all.

Usage:
    /usr/bin/python3 tests/tools/dnsserver.py --port N
        (--zone FILE | --records JSON) [--bind ADDR]... [--query-log FILE]
        [--port-file FILE] [--negative-ttl SECONDS]

    --port N          UDP and TCP port; 0 (the default) picks a free one,
                      the same for every address and both protocols.
    --bind ADDR       an address to listen on; repeat for several. Default:
                      127.0.0.1. Only loopback addresses are accepted.
    --zone FILE       the zone, as JSON (below). SIGHUP reads it again.
    --records JSON    the zone given directly on the command line.
    --query-log FILE  append one line per query received: "PROTO NAME TYPE",
                      e.g. "udp example.org MX" (name in lower case, no final
                      dot), flushed at once, so a test can count queries.
    --port-file FILE  also write the port number to FILE once ready.
    --negative-ttl S  TTL and SOA MINIMUM of negative answers (default 60):
                      what a resolver may cache NXDOMAIN/NODATA for
                      (RFC 2308 5).

Once every socket is bound it prints "ready PORT" on standard output (one
line, flushed). SIGTERM or SIGINT stops it cleanly with exit status 0.

Zone format: a JSON object whose keys are owner names (any case, final dot
optional) and whose values are objects with any of:
    "A":     ["127.0.0.2", ...]
    "AAAA":  ["::1", ...]
    "MX":    [[10, "mx1.example.org"], [20, "mx2.example.org"]]
             [[0, "."]] is a null MX (RFC 7505)
    "CNAME": "target.example.org"  (followed within the zone)
    "TXT":   ["v=spf1 -all", ...]
    "TTL":   300                   (seconds, for every record of the name)
and behaviours, each either true (every query type) or a list of types
(["AAAA"]) that it applies to:
    "SERVFAIL": true   answer with rcode SERVFAIL
    "REFUSED":  true   answer with rcode REFUSED
    "NXDOMAIN": true   answer with rcode NXDOMAIN
    "TIMEOUT":  true   never answer (the client times out)
    "TRUNCATE": true   over UDP always answer truncated (TC), forcing TCP
and "DELAY": 0.5 to wait that many seconds before answering.

A name that is not in the zone gets NXDOMAIN, unless a name below it is in
the zone (an empty non-terminal: NODATA, RFC 8020). A name in the zone
without records of the asked type gets NODATA (NOERROR, no answer). Negative
answers carry an SOA record in the authority section (RFC 2308 3).
A UDP answer larger than 512 octets (or the client's EDNS payload size) is
sent truncated, so the client retries over TCP (RFC 1035 4.2.1, RFC 7766).

Example:
    {"example.org":     {"MX": [[10, "mx1.example.org"]]},
     "mx1.example.org": {"A": ["127.0.0.2"], "AAAA": ["::1"], "TTL": 60},
     "nullmx.test":     {"MX": [[0, "."]]},
     "broken.test":     {"SERVFAIL": true},
     "v4only.test":     {"A": ["127.0.0.3"], "SERVFAIL": ["AAAA"]},
     "blackhole.test":  {"TIMEOUT": true}}
"""

import argparse
import ipaddress
import json
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, SOA, TXT, A, DNSHeader, DNSRecord

UDP_MAX_DEFAULT = 512  # RFC 1035 4.2.1, without EDNS
CNAME_CHAIN_MAX = 8
DEFAULT_TTL = 300
BEHAVIOURS = ("SERVFAIL", "REFUSED", "NXDOMAIN", "TIMEOUT", "TRUNCATE")
RECORD_TYPES = ("A", "AAAA", "MX", "CNAME", "TXT")


def norm(name):
    return name.rstrip(".").lower()


def load_zone(text, where):
    """Parse and check a zone; raise ValueError naming the problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError("%s: not JSON: %s" % (where, e))
    if not isinstance(raw, dict):
        raise ValueError("%s: the zone must be a JSON object" % where)
    zone = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError("%s: %s: must be an object" % (where, name))
        for key, value in entry.items():
            if key in ("A", "AAAA"):
                version = 4 if key == "A" else 6
                for a in value:
                    try:
                        ok = ipaddress.ip_address(a).version == version
                    except ValueError:
                        ok = False
                    if not ok:
                        raise ValueError("%s: %s: %r is not an %s address" % (where, name, a, key))
            elif key == "MX":
                for pair in value:
                    if (not isinstance(pair, list) or len(pair) != 2
                            or not isinstance(pair[0], int) or not isinstance(pair[1], str)):
                        raise ValueError("%s: %s: MX entries are [preference, host]" % (where, name))
            elif key == "CNAME":
                if not isinstance(value, str):
                    raise ValueError("%s: %s: CNAME is one name" % (where, name))
            elif key == "TXT":
                if not all(isinstance(t, str) for t in value):
                    raise ValueError("%s: %s: TXT entries are strings" % (where, name))
            elif key in ("TTL", "DELAY"):
                if not isinstance(value, (int, float)) or value < 0:
                    raise ValueError("%s: %s: %s must be a number >= 0" % (where, name, key))
            elif key in BEHAVIOURS:
                if value is not True and value is not False and not (
                        isinstance(value, list) and all(isinstance(t, str) for t in value)):
                    raise ValueError("%s: %s: %s is true or a list of types" % (where, name, key))
            else:
                raise ValueError("%s: %s: unknown key %r" % (where, name, key))
        zone[norm(name)] = entry
    return zone


class Zone:
    """The current zone; replaced whole on reload, read by many threads."""

    def __init__(self, zone, negative_ttl):
        self.zone = zone
        self.negative_ttl = negative_ttl

    def behaviour(self, entry, qtype, what):
        v = entry.get(what) if entry else None
        if v is True:
            return True
        if isinstance(v, list):
            return qtype in [t.upper() for t in v]
        return False

    def soa(self, name):
        owner = name or "."
        return RR(owner, QTYPE.SOA, ttl=self.negative_ttl,
                  rdata=SOA("ns.dnsserver.test", "hostmaster.dnsserver.test",
                            (1, 3600, 600, 86400, self.negative_ttl)))

    def records(self, name, qtype, entry, ttl):
        out = []
        for value in entry.get(qtype, []) if qtype in ("A", "AAAA", "MX", "TXT") else []:
            if qtype == "A":
                rd = A(value)
            elif qtype == "AAAA":
                rd = AAAA(value)
            elif qtype == "MX":
                rd = MX(value[1], value[0])
            else:
                rd = TXT(value)
            out.append(RR(name, getattr(QTYPE, qtype), ttl=ttl, rdata=rd))
        return out

    def answer(self, request, proto):
        """Return (reply DNSRecord or None for no answer, delay seconds)."""
        zone = self.zone
        reply = request.reply()
        qname = norm(str(request.q.qname))
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        entry = zone.get(qname)
        delay = float(entry.get("DELAY", 0)) if entry else 0.0

        if request.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
            return reply, delay
        if self.behaviour(entry, qtype, "TIMEOUT"):
            return None, delay
        for what in ("SERVFAIL", "REFUSED"):
            if self.behaviour(entry, qtype, what):
                reply.header.rcode = getattr(RCODE, what)
                reply.header.aa = 0
                return reply, delay
        if proto == "udp" and self.behaviour(entry, qtype, "TRUNCATE"):
            return truncated(request), delay
        if self.behaviour(entry, qtype, "NXDOMAIN"):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa(qname.partition(".")[2]))
            return reply, delay

        name = qname
        for _ in range(CNAME_CHAIN_MAX):
            if entry is None:
                break
            ttl = int(entry.get("TTL", DEFAULT_TTL))
            if "CNAME" in entry and qtype != "CNAME":
                target = norm(entry["CNAME"])
                reply.add_answer(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(target)))
                name, entry = target, zone.get(target)
                continue
            if qtype == "CNAME" and "CNAME" in entry:
                reply.add_answer(RR(name, QTYPE.CNAME, ttl=ttl, rdata=CNAME(entry["CNAME"])))
            else:
                for rr in self.records(name, qtype, entry, ttl):
                    reply.add_answer(rr)
            break
        if reply.rr:
            return reply, delay
        if entry is None and name == qname and not any(
                k.endswith("." + qname) for k in zone):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa(qname.partition(".")[2]))
        else:
            reply.add_auth(self.soa(name))
        return reply, delay


def truncated(request):
    """A reply with TC set that keeps the question (resolvers check it)."""
    r = DNSRecord(DNSHeader(id=request.header.id, qr=1, aa=1, tc=1, rd=request.header.rd, ra=1),
                  q=request.q)
    return r


class State:
    zone = None
    log = None
    log_lock = threading.Lock()

    @classmethod
    def note(cls, proto, request):
        if cls.log is None:
            return
        line = "%s %s %s\n" % (proto, norm(str(request.q.qname)),
                               QTYPE.get(request.q.qtype, str(request.q.qtype)))
        with cls.log_lock:
            cls.log.write(line)
            cls.log.flush()


def handle(data, proto):
    """Return the packed reply for a query, or None to stay silent."""
    try:
        request = DNSRecord.parse(data)
    except Exception:  # anything unparsable is dropped, as a server would
        return None
    if request.header.qr or not request.questions:
        return None
    State.note(proto, request)
    reply, delay = State.zone.answer(request, proto)
    if delay:
        time.sleep(delay)
    if reply is None:
        return None
    packed = reply.pack()
    if proto == "udp":
        limit = UDP_MAX_DEFAULT
        for rr in request.ar:
            if rr.rtype == QTYPE.OPT:
                limit = max(limit, rr.rclass)
        if len(packed) > limit:
            packed = truncated(request).pack()
    return packed


class UDPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        out = handle(data, "udp")
        if out is not None:
            sock.sendto(out, self.client_address)


class TCPHandler(socketserver.BaseRequestHandler):
    def handle(self):
        # RFC 7766 8: each message has a two-octet length prefix; several
        # queries may come on one connection.
        sock = self.request
        sock.settimeout(60)
        try:
            while True:
                head = recv_exact(sock, 2)
                if head is None:
                    return
                (n,) = struct.unpack("!H", head)
                data = recv_exact(sock, n)
                if data is None:
                    return
                out = handle(data, "tcp")
                if out is not None:
                    sock.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def server_class(base, family):
    class Server(socketserver.ThreadingMixIn, base):
        address_family = family
        daemon_threads = True
        block_on_close = False
        allow_reuse_address = base is socketserver.TCPServer
    return Server


def bind_all(addrs, port):
    """Bind UDP and TCP on every address, all on one port; return the list."""
    for _ in range(50):
        servers = []
        try:
            p = port
            for a in addrs:
                fam = socket.AF_INET6 if ":" in a else socket.AF_INET
                for base, handler in ((socketserver.UDPServer, UDPHandler),
                                      (socketserver.TCPServer, TCPHandler)):
                    s = server_class(base, fam)((a, p), handler)
                    servers.append(s)
                    p = s.server_address[1]
            return servers, p
        except OSError:
            for s in servers:
                s.server_close()
            if port != 0:
                raise
    raise OSError("no free port found")


def main():
    ap = argparse.ArgumentParser(description="authoritative test DNS server (loopback only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", action="append")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--zone")
    src.add_argument("--records")
    ap.add_argument("--query-log")
    ap.add_argument("--port-file")
    ap.add_argument("--negative-ttl", type=int, default=60)
    args = ap.parse_args()

    addrs = args.bind or ["127.0.0.1"]
    for a in addrs:
        try:
            loopback = ipaddress.ip_address(a).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            ap.error("%s is not a loopback address" % a)

    def read_zone():
        if args.zone:
            with open(args.zone) as f:
                return load_zone(f.read(), args.zone)
        return load_zone(args.records, "--records")

    try:
        State.zone = Zone(read_zone(), args.negative_ttl)
    except (OSError, ValueError) as e:
        print("dnsserver: %s" % e, file=sys.stderr)
        return 2
    if args.query_log:
        State.log = open(args.query_log, "a")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def reload(*_):
        try:
            State.zone = Zone(read_zone(), args.negative_ttl)
        except (OSError, ValueError) as e:
            print("dnsserver: reload: %s (keeping the old zone)" % e, file=sys.stderr)
    signal.signal(signal.SIGHUP, reload)

    servers, port = bind_all(addrs, args.port)
    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        threads.append(t)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("ready %d" % port, flush=True)

    while not stop.wait(0.2):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    if State.log:
        State.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
