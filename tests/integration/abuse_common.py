"""Shared steps of the abuse suites (issue 6): test_abuse.py,
test_open_relay.py, test_limits.py, test_smuggling.py.

Every case there asserts four things: the reply code with its enhanced
code, that the queue holds exactly what it should (detourctl queue list
--json), that nothing reached a destination it should not (where delivery
runs), and that a bystander -- another client, often from another loopback
address -- is served while the attack goes on: its banner within a second
and a whole transaction.

A relay used here carries `expected`, the set of queue ids it should hold;
assert_queue() compares it with the real queue.
"""

import os
import re
import socket
import time

import helpers
import mailworld

# Clients come from 127.0.0.x, which is not in these networks: every
# per-address defence applies to them, and only AUTH lets them relay.
UNTRUSTED = "192.0.2.0/24 2001:db8::/32"

# The bystander's banner must arrive within this (the issue: "a bystander
# gets its banner within a second").
BANNER_LIMIT = 1.0


def new_relay(pool, **kw):
    r = pool.new(**kw)
    r.expected = set()
    return r


def add_account(relay, address, password, unlimited=False):
    p = relay.ctl("user", "add", address, "--password-stdin", input=(password + "\n").encode())
    assert p.returncode == 0, "user add %s: %s" % (address, p.stderr)
    if unlimited:
        p = relay.ctl("user", "limits", address, "--messages", "unlimited", "--recipients", "unlimited")
        assert p.returncode == 0, "user limits %s: %s" % (address, p.stderr)


def auth_plain(c, user, password):
    return c.cmd("AUTH PLAIN " + helpers.plain_blob(user, password))


def login(relay, user, password, listener=None, source=None, name="client.test"):
    """A session that has done EHLO and AUTH PLAIN (235) -- on a listener
    with plaintext_auth = yes, on loopback only."""
    c = relay.client(listener=listener, source=source)
    assert c.banner.is_(220), c.banner
    c.ehlo(name)
    r = auth_plain(c, user, password)
    assert r.is_(235, "2.7.0"), "AUTH as %s: %r" % (user, r)
    return c


def timed_client(relay, listener=None, source=None, limit=BANNER_LIMIT):
    """Connect and read the banner; it must be 220 and arrive within limit
    seconds of the connect."""
    t0 = time.monotonic()
    c = relay.client(listener=listener, source=source, read_banner=False)
    b = c.reply(timeout=limit + 5)
    took = time.monotonic() - t0
    assert b.is_(220), "the bystander's banner: %r" % (b,)
    assert took <= limit, "the bystander waited %.2fs for its banner (limit %.1fs)" % (took, limit)
    return c


_seq = [0]


def bystander(relay, listener=None, source=None, account=None, rcpt="someone@example.net", timeout=30.0):
    """Another client: its banner within BANNER_LIMIT, then a whole
    transaction (AUTH first when account=(user, password)), finished within
    timeout seconds. The message's queue id is added to relay.expected and
    returned."""
    _seq[0] += 1
    t0 = time.monotonic()
    with timed_client(relay, listener=listener, source=source) as c:
        c.ehlo("bystander.test")
        if account is not None:
            r = auth_plain(c, *account)
            assert r.is_(235, "2.7.0"), "bystander AUTH: %r" % (r,)
            sender = account[0]
        else:
            sender = "bystander-%d-%d@example.org" % (os.getpid(), _seq[0])
        c.envelope(sender, [rcpt])
        r = c.data(b"Subject: bystander %d\r\n\r\nI am only passing by.\r\n" % _seq[0])
        assert r.is_(250, "2.0.0") and r.qid, "the bystander's message: %r" % (r,)
        c.cmd("QUIT")
    took = time.monotonic() - t0
    assert took < timeout, "the bystander took %.1fs" % took
    if hasattr(relay, "expected"):
        relay.expected.add(r.qid)
    return r.qid


def assert_queue(relay, extra=()):
    """The queue holds exactly relay.expected (plus extra): nothing that was
    refused, nothing half-written."""
    have = set(relay.queue_ids())
    want = set(relay.expected) | set(extra)
    assert have == want, "queue: unexpected %s, missing %s" % (
        sorted(have - want), sorted(want - have))


def queued_from(relay, sender):
    return [m["id"] for m in relay.queue() if m["sender"] == sender]


def status(relay):
    """`detourctl status` as a dict of its key: value lines."""
    p = relay.ctl("status")
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            v = v.strip()
            out[k.strip()] = int(v) if v.isdigit() else v
    return out


def events(relay, name, **match):
    """Log events `name` whose key=value pairs include match."""
    return [kv for kv in mailworld.events(relay, name)
            if all(kv.get(k) == v for k, v in match.items())]


def expect_closed(c, timeout=10.0):
    assert c.closed(timeout), "the connection is still open; unread: %r" % (c.buf[:200],)
    assert c.buf == b"", "bytes after the last reply: %r" % (c.buf[:200],)


def poll_reply(c):
    """A reply if one is already there, else None (never blocks long)."""
    try:
        return c.reply(timeout=0.01)
    except TimeoutError:
        return None


def du(path):
    """Octets used by the files under path (allocated blocks)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def raw_connect(port, host="127.0.0.1", source=None, timeout=10.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def read_banner(sock, timeout=10.0):
    """Bytes up to the first CRLF (or EOF)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


CONTROL_RE = re.compile(r"[\r\n\x00]")
