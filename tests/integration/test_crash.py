"""Nothing acknowledged is lost: detourd is killed (SIGKILL, by its test-only
crash points or from outside under load) at every step of the commit path,
restarted, and every message that got a 250 is still queued, byte-exact,
while nothing half-written looks queued."""

import os
import random
import re
import signal
import smtplib
import subprocess
import threading
import time

import pytest

from conftest import TOP
from helpers import QID_RE, ConnectionClosed, assert_stored_exactly, dot_stuff, make_body, wait_for

# Where the process may die, and whether the message being committed may
# survive. Before the commit it must be gone; after the commit (but before
# the client heard 250) it may be queued: delivery is at-least-once.
CRASHPOINTS = {
    "session-before-commit": "absent",
    "spool-batch-begin": "absent",
    "spool-message-row": "absent",
    "spool-body": "absent",
    "spool-recipients": "absent",
    "spool-before-commit": "absent",
    "spool-after-commit": "maybe",
    "session-before-reply": "maybe",
}


def _source_crashpoints():
    names = set()
    for sub in ("src/queue", "src/server"):
        d = os.path.join(TOP, sub)
        for f in os.listdir(d):
            if f.endswith(".c"):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    names.update(re.findall(r'CRASHPOINT\("([^"]+)"\)', fh.read()))
    return names


def test_every_crash_point_in_the_source_is_tested():
    assert _source_crashpoints() == set(CRASHPOINTS), \
        "crash points in src/ and in this test differ: %r" % (_source_crashpoints() ^ set(CRASHPOINTS))


def integrity_check(relay):
    db = os.path.join(relay.state_dir, "queue.db")
    p = subprocess.run(["sqlite3", db, "PRAGMA integrity_check"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.stdout, p.stderr)


def tmp_files(relay):
    d = os.path.join(relay.state_dir, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def send_raw(relay, sender, rcpts, body):
    """Send one message; returns the reply to its end (or raises
    ConnectionClosed)."""
    with relay.client() as c:
        c.ehlo()
        c.envelope(sender, rcpts)
        return c.data(body)


@pytest.mark.parametrize("point", list(CRASHPOINTS))
def test_crash_point_loses_nothing_acknowledged(relays, point):
    relay = relays.new()
    acked = []
    for i, size in enumerate([1024, 200 * 1024, 5000]):   # 200K spills to state_dir/tmp
        body = make_body(size, seed=100 + i)
        sender = "acked%d@example.org" % i
        rcpts = ["a%d@example.net" % i, "b%d@example.net" % i]
        r = send_raw(relay, sender, rcpts, body)
        assert r.is_(250, "2.0.0"), r
        acked.append((r.qid, sender, rcpts, body))
    relay.stop()

    relay.start(env={"DETOUR_CRASHPOINT": point})
    crash_body = make_body(300 * 1024, seed=200)
    crash_rcpts = ["x@example.net", "y@example.net", "z@example.net"]
    try:
        r = send_raw(relay, "crash@example.org", crash_rcpts, crash_body)
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        r = None
    assert r is None, "the client got a reply although the daemon should have died at %s: %r" % (point, r)
    rc = relay.wait_exit(60)
    assert rc == -signal.SIGKILL, "detourd exited with %s, not by the crash point" % rc
    assert "crashpoint: killing the process" in relay.run_log()
    relay.proc = None

    relay.start()
    queued = {m["id"]: m for m in relay.queue()}
    for qid, sender, rcpts, body in acked:
        assert qid in queued, "acknowledged message %s lost after a crash at %s" % (qid, point)
        assert queued[qid]["sender"] == sender
        assert [x["address"] for x in queued[qid]["recipients"]] == rcpts
        assert_stored_exactly(relay, qid, body)
    crashed = [m for m in queued.values() if m["sender"] == "crash@example.org"]
    if CRASHPOINTS[point] == "absent":
        assert crashed == [], "a message that was never committed is queued after a crash at %s" % point
    else:
        assert len(crashed) <= 1
        for m in crashed:
            assert [x["address"] for x in m["recipients"]] == crash_rcpts, m
            assert_stored_exactly(relay, m["id"], crash_body)
    assert len(queued) == len(acked) + len(crashed)
    assert tmp_files(relay) == [], "spill files left in state_dir/tmp after recovery"
    # The restarted daemon works.
    r = send_raw(relay, "after@example.org", ["r@example.net"], b"Subject: after\r\n\r\nfine\r\n")
    assert r.is_(250, "2.0.0"), r
    relay.stop()
    integrity_check(relay)


def test_kill_9_under_load_loses_no_acknowledged_message(relays):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    relay = relays.new(limits={"max_connections_per_ip": "100"})
    acked = {}       # qid -> (sender, body)
    attempted = {}   # sender -> body (acknowledged or not)
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.monotonic() + 90

    def client(t):
        n = 0
        while not stop.is_set() and n < 400 and time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", relay.port, timeout=30) as s:
                    s.ehlo()
                    while not stop.is_set() and n < 400 and time.monotonic() < deadline:
                        sender = "load%d-%d@example.org" % (t, n)
                        size = 2048 if n % 7 else 150 * 1024
                        body = make_body(size, seed=t * 1000 + n) if n < 2 or n % 7 == 0 else \
                            (b"Subject: %s\r\n\r\n" % sender.encode()) + b"line\r\n" * (size // 6)
                        with lock:
                            attempted[sender] = body
                        n += 1
                        s.mail(sender)
                        s.rcpt("dest%d@example.net" % t)
                        code, resp = s.data(body)
                        if code == 250:
                            with lock:
                                acked[QID_RE.search(resp).group(1).decode()] = (sender, body)
            except (smtplib.SMTPException, OSError):
                if stop.is_set():
                    return
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(10)]
    for th in threads:
        th.start()
    try:
        wait_for(lambda: len(acked) >= 30, timeout=60, what="30 acknowledged messages")
        time.sleep(rng.uniform(0.0, 1.5))   # a random moment under load
        relay.kill9()
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    assert not any(th.is_alive() for th in threads)
    acked_at_kill = dict(acked)
    relay.start()
    queued = {m["id"]: m for m in relay.queue()}
    lost = sorted(set(acked_at_kill) - set(queued))
    assert not lost, "seed %d: %d acknowledged messages lost after kill -9: %s" % (seed, len(lost), lost[:10])
    for qid, (sender, _) in acked_at_kill.items():
        assert queued[qid]["sender"] == sender
    # Byte-exact: a sample of the acknowledged ones, and every message that
    # is queued although its client never saw the 250 (it must be whole).
    sample = rng.sample(sorted(acked_at_kill), min(15, len(acked_at_kill)))
    for qid in sample:
        assert_stored_exactly(relay, qid, acked_at_kill[qid][1])
    unacked = [m for m in queued.values() if m["id"] not in acked_at_kill]
    for m in unacked:
        assert m["sender"] in attempted, m
        assert_stored_exactly(relay, m["id"], attempted[m["sender"]])
    senders = [m["sender"] for m in queued.values()]
    assert len(senders) == len(set(senders)), "seed %d: a message is queued twice" % seed
    assert tmp_files(relay) == []
    relay.stop()
    integrity_check(relay)


def test_client_vanishing_mid_message_leaves_nothing_behind(relays):
    relay = relays.new()
    body = make_body(400 * 1024, seed=77)   # large enough to spill to state_dir/tmp
    c = relay.client()
    c.ehlo()
    c.envelope("vanish@example.org", ["r@example.net"])
    assert c.cmd("DATA").code == 354
    c.send(dot_stuff(body)[:300 * 1024])
    wait_for(lambda: tmp_files(relay), timeout=30, what="the spill file")
    c.close()
    relay.wait_log("reason=eof")
    wait_for(lambda: not tmp_files(relay), timeout=30, what="the spill file to be removed")
    assert relay.by_sender("vanish@example.org") == []
    relay.stop()
    integrity_check(relay)
