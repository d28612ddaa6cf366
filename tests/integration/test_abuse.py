"""Abuse resistance (issue 6): per-account limits, per-address defences,
timeouts, descriptor exhaustion and many idle connections, against a real
detourd.

Clients come from 127.0.0.x, which these relays do not trust (except where
a case says otherwise), so the per-address limits apply to them. Accounts
log in with AUTH PLAIN on a listener with plaintext_auth = yes (loopback
only). Every case checks the reply codes, the queue (exactly what should be
there) and a bystander served while the attack goes on.
"""

import json
import resource
import socket
import time

import pytest

from abuse_common import (UNTRUSTED, add_account, assert_queue, auth_plain, bystander, events, expect_closed,
                          login, new_relay, poll_reply, raw_connect, read_banner, status, timed_client)
from helpers import ConnectionClosed, plain_blob

PW = "Abuse-Test-Password-1"


# -- 1. per-account limits ------------------------------------------------------

ACCT_LIMITS = {"account_messages": "3/1h", "account_recipients": "5/1h",
               "auth_failure_delay": "100ms", "auth_failures": "100000/1m"}
SUB = {"sub": {"auth": "required", "plaintext_auth": "yes"}}
BY = ("bystander@example.org", PW)


@pytest.fixture(scope="module")
def acct(module_relays):
    r = new_relay(module_relays, name="accounts", trusted=UNTRUSTED, listeners=SUB, limits=ACCT_LIMITS)
    add_account(r, BY[0], PW, unlimited=True)
    for a in ("msgs", "rcpts", "raise", "lower", "unlim", "susp"):
        add_account(r, a + "@example.org", PW)
    return r


def show(relay, address):
    p = relay.ctl("user", "show", address, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_account_messages_3_per_hour_4th_mail_is_450(acct):
    user = "msgs@example.org"
    before = status(acct)["refused_rate_limit"]
    with login(acct, user, PW) as c:
        for i in range(3):
            c.envelope(user, ["friend%d@example.net" % i])
            r = c.data(b"Subject: %d of 3\r\n\r\nwithin the limit\r\n" % i)
            assert r.is_(250, "2.0.0"), r
            acct.expected.add(r.qid)
        # N+1, and more: refused at MAIL each time, the session stays usable.
        for i in range(3):
            c.expect("MAIL FROM:<%s>" % user, 450, "4.7.1")
            c.expect("RCPT TO:<late@example.net>", 503, "5.5.1")
        bystander(acct, account=BY)
        c.expect("NOOP", 250, "2.0.0")
    assert_queue(acct)
    assert len([q for q in acct.queue() if q["sender"] == user]) == 3
    # Logged once per window however often it is refused.
    assert len(events(acct, "smtp.rate_limited", account=user, kind="messages")) == 1, \
        events(acct, "smtp.rate_limited")
    assert status(acct)["refused_rate_limit"] - before == 3
    s = show(acct, user)
    assert s["messages_limit"] == "3/3600s" and s["messages_limit_source"] == "default", s
    assert s["recipients_limit"] == "5/3600s" and s["recipients_limit_source"] == "default", s
    assert s["messages_available"] == 0, s
    assert s["recipients_available"] == 2, s


def test_account_recipients_5_per_hour_6th_rcpt_is_450(acct):
    user = "rcpts@example.org"
    with login(acct, user, PW) as c:
        c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
        for i in range(5):
            c.expect("RCPT TO:<r%d@example.net>" % i, 250, "2.1.5")
        c.expect("RCPT TO:<r5@example.net>", 450, "4.7.1")
        c.expect("RCPT TO:<r6@example.net>", 450, "4.7.1")
        bystander(acct, account=BY)
        r = c.data(b"Subject: five\r\n\r\nfive recipients\r\n")
        assert r.is_(250, "2.0.0"), r
        acct.expected.add(r.qid)
        # The next message has no recipient left at all.
        c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
        c.expect("RCPT TO:<r7@example.net>", 450, "4.7.1")
        c.expect("RSET", 250)
    assert_queue(acct)
    assert sorted(x["address"] for x in acct.show(r.qid)["recipients"]) == ["r%d@example.net" % i for i in range(5)]
    assert len(events(acct, "smtp.rate_limited", account=user, kind="recipients")) == 1, \
        events(acct, "smtp.rate_limited")
    s = show(acct, user)
    assert s["recipients_available"] == 0 and s["messages_available"] == 1, s


def _use_up_messages(relay, user, n=3):
    with login(relay, user, PW) as c:
        for _ in range(n):
            c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
            c.expect("RSET", 250)
        c.expect("MAIL FROM:<%s>" % user, 450, "4.7.1")


def test_raised_account_limit_applies_to_new_sessions(acct):
    """`user limits ADDRESS --messages 10/1h` after 3 of 3 were used: the
    account has 7 messages left in the window, from its next login on."""
    user = "raise@example.org"
    _use_up_messages(acct, user)
    with login(acct, user, PW) as old:
        p = acct.ctl("user", "limits", user, "--messages", "10/1h")
        assert p.returncode == 0, p.stderr
        # A session keeps the limits it logged in with.
        old.expect("MAIL FROM:<%s>" % user, 450, "4.7.1")
    s = show(acct, user)
    assert s["messages_limit"] == "10/3600s" and s["messages_limit_source"] == "account", s
    with login(acct, user, PW) as c:
        r = c.cmd("MAIL FROM:<%s>" % user)
        assert r.is_(250, "2.1.0"), \
            "3 of a raised limit of 10/1h used, a new session's MAIL got %r (user show: %r)" % (r, s)
        c.expect("RSET", 250)
    s = show(acct, user)
    assert s["messages_available"] == 6, s
    bystander(acct, account=BY)
    assert_queue(acct)


def test_lowered_account_limit_counts_what_was_already_sent(acct):
    """5 messages sent under an own limit of 10/1h, then the limit is
    lowered to 3/1h: the account is over it, its next login may send
    nothing more in the window."""
    user = "lower@example.org"
    p = acct.ctl("user", "limits", user, "--messages", "10/1h")
    assert p.returncode == 0, p.stderr
    with login(acct, user, PW) as c:
        for _ in range(5):
            c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
            c.expect("RSET", 250)
    p = acct.ctl("user", "limits", user, "--messages", "3/1h")
    assert p.returncode == 0, p.stderr
    s = show(acct, user)
    assert s["messages_limit"] == "3/3600s", s
    with login(acct, user, PW) as c:
        r = c.cmd("MAIL FROM:<%s>" % user)
        assert r.is_(450, "4.7.1"), \
            "5 sent, limit lowered to 3/1h: a new session's MAIL got %r (user show: %r)" % (r, s)
    assert show(acct, user)["messages_available"] == 0
    bystander(acct, account=BY)
    assert_queue(acct)


def test_unlimited_then_default_account_limit(acct):
    user = "unlim@example.org"
    _use_up_messages(acct, user)
    p = acct.ctl("user", "limits", user, "--messages", "unlimited")
    assert p.returncode == 0, p.stderr
    s = show(acct, user)
    assert s["messages_limit"] == "unlimited" and s["messages_limit_source"] == "account", s
    with login(acct, user, PW) as c:
        for i in range(6):
            c.expect("MAIL FROM:<%s>" % user, 250, "2.1.0")
            c.expect("RSET", 250)
    p = acct.ctl("user", "limits", user, "--messages", "default")
    assert p.returncode == 0, p.stderr
    s = show(acct, user)
    assert s["messages_limit"] == "3/3600s" and s["messages_limit_source"] == "default", s
    assert s["messages_available"] == 0, s
    with login(acct, user, PW) as c:
        c.expect("MAIL FROM:<%s>" % user, 450, "4.7.1")
    bystander(acct, account=BY)
    assert_queue(acct)


def test_suspended_account_cannot_log_in_until_resumed(acct):
    user = "susp@example.org"
    with login(acct, user, PW) as c:
        c.expect("MAIL FROM:<%s>" % user, 250)
    p = acct.ctl("user", "suspend", user)
    assert p.returncode == 0, p.stderr
    assert show(acct, user)["suspended"] is True
    with acct.client() as c:
        c.ehlo()
        r = auth_plain(c, user, PW)
        assert r.is_(535, "5.7.8"), r
        # Nothing to be sent without the login.
        c.expect("MAIL FROM:<%s>" % user, 530, "5.7.0")
    bystander(acct, account=BY)
    p = acct.ctl("user", "resume", user)
    assert p.returncode == 0, p.stderr
    assert show(acct, user)["suspended"] is False
    with login(acct, user, PW) as c:
        c.envelope(user, ["back@example.net"])
        r = c.data(b"Subject: back\r\n\r\nresumed\r\n")
        assert r.is_(250, "2.0.0"), r
        acct.expected.add(r.qid)
    assert_queue(acct)


# -- 2. per-address defences ----------------------------------------------------------

@pytest.fixture(scope="module")
def caps(module_relays):
    r = new_relay(module_relays, name="caps", trusted=UNTRUSTED, listeners=SUB,
                  limits={"max_connections": "6", "max_connections_per_ip": "3", "auth_failure_delay": "100ms"})
    add_account(r, BY[0], PW, unlimited=True)
    return r


def _hold(relay, n, source=None):
    out = []
    for _ in range(n):
        c = relay.client(source=source)
        assert c.banner.is_(220), c.banner
        out.append(c)
    return out


def _refused_at_once(relay, source, text):
    t0 = time.monotonic()
    c = relay.client(source=source, read_banner=False)
    try:
        r = c.reply(timeout=10)
        took = time.monotonic() - t0
        assert r.is_(421, "4.7.0"), r
        assert text in r.text, r
        assert took < 1.0, "the refusal took %.2fs" % took
        expect_closed(c)
    finally:
        c.close()


def _wait_connections(relay, most, timeout=10.0):
    """Wait until detourd counts at most `most` sessions (a client's close is
    noticed on the next loop iteration)."""
    deadline = time.monotonic() + timeout
    while status(relay)["connections"] > most:
        assert time.monotonic() < deadline, "sessions not released: %r" % status(relay)
        time.sleep(0.05)


def test_connections_per_ip_cap_leaves_other_addresses_served(caps):
    held = _hold(caps, 3)
    try:
        _refused_at_once(caps, None, "from your address")
        _refused_at_once(caps, "127.0.0.1", "from your address")
        # Another address is served in full meanwhile.
        bystander(caps, source="127.0.0.2", account=BY)
        # The held sessions still work.
        held[0].ehlo()
        held[0].expect("NOOP", 250)
    finally:
        for c in held:
            c.close()
    _wait_connections(caps, 0)
    timed_client(caps, source="127.0.0.1").close()
    assert status(caps)["refused_per_ip"] >= 2
    assert events(caps, "smtp.refused", reason="max_connections_per_ip", client="127.0.0.1")
    assert_queue(caps)


def test_max_connections_cap_is_421_at_once(caps):
    held = _hold(caps, 3, "127.0.0.1") + _hold(caps, 3, "127.0.0.4")
    try:
        _refused_at_once(caps, "127.0.0.5", "Too many connections")
        held.pop().close()
        _wait_connections(caps, 5)
        bystander(caps, source="127.0.0.6", account=BY)
    finally:
        for c in held:
            c.close()
    assert events(caps, "smtp.refused", reason="max_connections")
    assert_queue(caps)


@pytest.fixture(scope="module")
def brute(module_relays):
    r = new_relay(module_relays, name="brute", trusted=UNTRUSTED, listeners=SUB,
                  limits={"auth_failures": "3/10m", "auth_failure_delay": "1s"})
    add_account(r, "victim@example.org", PW)
    return r


def test_auth_failures_block_one_address_while_others_log_in(brute):
    user = "victim@example.org"
    with brute.client() as c:
        c.ehlo()
        for i in range(3):
            t0 = time.monotonic()
            c.send(("AUTH PLAIN %s\r\n" % plain_blob(user, "wrong-%d" % i)).encode())
            if i == 0:
                # While the guess waits for its answer, another address logs in.
                with login(brute, user, PW, source="127.0.0.3") as other:
                    assert c.nothing_pending(0), "the failure was answered before the delay: %r" % c.buf
                    other.expect("NOOP", 250)
            r = c.reply(timeout=20)
            took = time.monotonic() - t0
            assert r.is_(535, "5.7.8"), r
            assert took >= 0.95, "failure %d answered after %.2fs, the delay is 1s" % (i + 1, took)
        # Blocked now, even with the right password, for the whole address.
        r = auth_plain(c, user, PW)
        assert r.is_(454, "4.7.0"), r
        c.expect("MAIL FROM:<%s>" % user, 530, "5.7.0")
    with brute.client() as c:
        c.ehlo()
        assert auth_plain(c, user, PW).is_(454, "4.7.0")
    # Other addresses are not affected.
    bystander(brute, source="127.0.0.3", account=(user, PW))
    assert status(brute)["refused_auth_blocked"] == 2
    assert len(events(brute, "smtp.auth_blocked", client="127.0.0.1")) == 1
    assert not events(brute, "smtp.auth_blocked", client="127.0.0.3")
    assert_queue(brute)


@pytest.fixture(scope="module")
def plain(module_relays):
    """Trusted loopback, defaults otherwise."""
    return new_relay(module_relays, name="plain")


def test_too_many_errors_in_one_session_is_421_and_close(plain):
    with plain.client() as c:
        c.ehlo()
        # SMTP_ERRORS_MAX (src/lib/limits.h) is 20: 19 errors are answered...
        for _ in range(19):
            c.expect("FROBNICATE", 500, "5.5.1")
        c.expect("NOOP", 250)
        bystander(plain)
        c.expect("MAIL FROM:<a@b@c>", 501, "5.1.7")   # ...the 20th too, then 421
        r = c.reply(timeout=10)
        assert r.is_(421, "4.7.0"), r
        expect_closed(c)
    assert events(plain, "smtp.disconnect", reason="too-many-errors")
    assert_queue(plain)


@pytest.fixture(scope="module")
def slow(module_relays):
    return new_relay(module_relays, name="slow",
                     limits={"command_timeout": "2s", "data_timeout": "2s", "session_timeout": "5s"})


def test_slow_clients_are_closed_by_the_timeouts(slow):
    """command_timeout and data_timeout (421 4.4.2), and the whole-session
    deadline for a client that sends NOOP every second and so never hits the
    other two. All three at once, with a bystander served meanwhile."""
    t0 = time.monotonic()
    idle = slow.client()
    idle.ehlo()
    in_data = slow.client()
    in_data.ehlo()
    in_data.envelope("stalled@example.org", ["r@example.net"])
    assert in_data.cmd("DATA").code == 354
    in_data.send(b"Subject: stalled\r\n\r\nhalf a li")
    noop = slow.client()
    noop.ehlo()
    got = {}
    try:
        bystander(slow)
        while "noop" not in got:
            assert time.monotonic() - t0 < 20, "the session deadline never came: %r" % got
            for name, c in (("idle", idle), ("data", in_data)):
                if name not in got:
                    r = poll_reply(c)
                    if r is not None:
                        got[name] = (r, time.monotonic() - t0)
            try:
                noop.send(b"NOOP\r\n")
            except OSError:
                pass
            try:
                r = noop.reply(timeout=3)
            except ConnectionClosed:
                raise AssertionError("closed without a reply at %.1fs" % (time.monotonic() - t0))
            if r.code != 250:
                got["noop"] = (r, time.monotonic() - t0)
                break
            time.sleep(1.0)
        for name, c in (("idle", idle), ("data", in_data)):
            if name not in got:
                got[name] = (c.reply(timeout=10), time.monotonic() - t0)
        for name, (low, high) in (("idle", (1.5, 4.5)), ("data", (1.5, 4.5)), ("noop", (4.5, 8.0))):
            r, when = got[name]
            assert r.is_(421, "4.4.2"), (name, r)
            assert low <= when <= high, "%s closed at %.1fs, expected %s..%ss" % (name, when, low, high)
        for c in (idle, in_data, noop):
            expect_closed(c)
    finally:
        for c in (idle, in_data, noop):
            c.close()
    assert events(slow, "smtp.disconnect", reason="session-timeout")
    assert len(events(slow, "smtp.disconnect", reason="timeout")) >= 2
    assert slow.by_sender("stalled@example.org") == []
    assert_queue(slow)


# -- running out of file descriptors ----------------------------------------------

FD_LIMIT = 64


def test_event_loop_survives_running_out_of_descriptors(module_relays):
    r = new_relay(module_relays, name="fds", start=False)
    r.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    r.start()
    socks = []
    try:
        # An open session before the flood: it must go on working.
        early = r.client()
        early.ehlo()
        for _ in range(FD_LIMIT + 30):
            socks.append(raw_connect(r.port))
        r.wait_log("smtp.accept_error", timeout=20)
        served = 0
        for s in socks:
            s.settimeout(0.2)
            try:
                if s.recv(100).startswith(b"220"):
                    served += 1
            except socket.timeout:
                pass
        assert 0 < served < len(socks), "served %d of %d at a limit of %d descriptors" % (served, len(socks), FD_LIMIT)
        # The session opened before still completes a message.
        early.envelope("early@example.org", ["r@example.net"])
        rep = early.data(b"Subject: early\r\n\r\nwhile out of descriptors\r\n")
        assert rep.is_(250, "2.0.0"), rep
        r.expected.add(rep.qid)
        early.close()
    finally:
        for s in socks:
            s.close()
    # Once the descriptors are back, new clients are served normally.
    deadline = time.monotonic() + 10
    while True:
        try:
            bystander(r)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert r.running(), "detourd died:\n" + r.run_log()[-3000:]
    ev = events(r, "smtp.accept_error")
    assert ev and all(e.get("error") == "Too many open files" for e in ev), ev[:3]
    # Paused between attempts: not a busy loop of failing accept() calls.
    assert len(ev) < 200, "%d accept errors: busy loop?" % len(ev)
    assert_queue(r)


# -- 10. many idle connections -----------------------------------------------------

def test_200_idle_connections_do_not_starve_a_bystander(plain):
    socks = []
    try:
        for _ in range(200):
            socks.append(raw_connect(plain.port))
        for s in socks:
            assert read_banner(s).startswith(b"220 "), "an idle connection got no banner"
        assert status(plain)["connections"] >= 200
        t0 = time.monotonic()
        bystander(plain)
        with timed_client(plain) as c:
            c.ehlo()
        assert time.monotonic() - t0 < 10
    finally:
        for s in socks:
            s.close()
    assert_queue(plain)
