"""A 250 after DATA means the message is on stable storage, seen at the
system-call level: detourd runs under strace while messages arrive one at a
time, and between the server writing "354" and writing the "250" that
acknowledges the message, one of its threads must have completed an fsync
or fdatasync.

The crash tests (test_crash.py) cannot see this: a killed process leaves
its writes in the page cache, and only a power cut would lose them. This
test is what catches a commit that reached the WAL but was never synced
(for example a PRAGMA synchronous that did not take)."""

import os
import re
import smtplib
import subprocess
import time

import pytest

from helpers import wait_for
from mailworld import SPECIAL, new_relay, simple_zone, wait_gone

MESSAGES = 5

SYNC_DONE = re.compile(r"^\d+\s+\S+\s+(?:<\.\.\. )?(fsync|fdatasync)(?: resumed>|\().*= 0$")


class Trace:
    """strace -f attached to a running detourd: every thread, the sync calls
    and the writes to clients (first octets only)."""

    def __init__(self, pid, path):
        self.path = path
        self.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-tt", "-s", "16", "-o", path,
             "-e", "trace=fsync,fdatasync,write,writev,sendto,sendmsg", "-p", str(pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def lines(self):
        try:
            with open(self.path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_attached(self, port):
        """Until a banner written to a new client shows in the trace."""
        def banner_traced():
            assert self.proc.poll() is None, "strace exited: %s" % self.proc.stderr.read().decode()
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                s.noop()
            return any('"220 ' in line for line in self.lines())
        wait_for(banner_traced, timeout=20, what="strace to attach to detourd")

    def stop(self):
        """Detach before the daemon exits (the leak checker of a sanitizer
        build cannot run in a traced process)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def syncs_before_each_250(lines):
    """For each message (the server's "354" ... "250 2.0.0"), how many sync
    calls completed in between."""
    counts, inside, n = [], False, 0
    for line in lines:
        if SYNC_DONE.match(line):
            n += 1
        elif '"354 ' in line:
            inside, n = True, 0
        elif inside and '"250 2.0.0' in line:
            counts.append(n)
            inside = False
    return counts


def send_one(port, i):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("a@sender.test", ["b@dest.test"], b"Subject: durable %d\r\n\r\nbody %d\r\n" % (i, i))


def traced_run(relay, tmp_path, between):
    trace = Trace(relay.pid, os.path.join(str(tmp_path), "strace.out"))
    try:
        trace.wait_attached(relay.port)
        for i in range(MESSAGES):
            send_one(relay.port, i)
            between()
        time.sleep(0.5)
    finally:
        trace.stop()
    return syncs_before_each_250(trace.lines())


def test_every_250_follows_a_sync_with_delivery_paused(relays, tmp_path):
    """Only new messages: every batch is a commit that needs its fsync."""
    relay = relays.new()
    counts = traced_run(relay, tmp_path, lambda: time.sleep(0.2))
    assert len(counts) == MESSAGES, counts
    assert all(c >= 1 for c in counts), "a 250 with no fsync before it: %r" % counts
    assert len(relay.queue_ids()) == MESSAGES


def test_every_250_follows_a_sync_while_delivering(relays, world, tmp_path):
    """Delivery results are committed without an fsync of their own
    (docs/queue.md); a new message after them must get one again."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world)

    def delivered():
        for q in relay.queue_ids():
            wait_gone(relay, q)

    counts = traced_run(relay, tmp_path, delivered)
    assert len(counts) == MESSAGES, counts
    assert all(c >= 1 for c in counts), "a 250 with no fsync before it: %r" % counts
    assert len(mx.delivered()) == MESSAGES


def test_the_trace_reader_sees_a_missing_sync():
    """The parser above, on strace lines of both shapes (whole and
    interrupted by another thread), including a 250 with no sync before it."""
    lines = [
        '10 10:00:00.000001 writev(16, [{iov_base="354 End data with"..., iov_len=37}], 1) = 37',
        '11 10:00:00.000002 fdatasync(9 <unfinished ...>',
        '11 10:00:00.000003 <... fdatasync resumed>) = 0',
        '10 10:00:00.000004 writev(16, [{iov_base="250 2.0.0 Ok: que"..., iov_len=42}], 1) = 42',
        '10 10:00:00.000005 writev(16, [{iov_base="354 End data with"..., iov_len=37}], 1) = 37',
        '10 10:00:00.000006 writev(16, [{iov_base="250 2.0.0 Ok: que"..., iov_len=42}], 1) = 42',
        '10 10:00:00.000007 writev(16, [{iov_base="354 End data with"..., iov_len=37}], 1) = 37',
        '11 10:00:00.000008 fsync(9) = -1 EIO (Input/output error)',
        '11 10:00:00.000009 fdatasync(9)      = 0',
        '10 10:00:00.000010 writev(16, [{iov_base="250 2.0.0 Ok: que"..., iov_len=42}], 1) = 42',
    ]
    assert syncs_before_each_250(lines) == [1, 0, 1]
