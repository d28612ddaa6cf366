"""Signals: SIGHUP reloads the configuration (new limits for new sessions,
new listeners) and keeps the old one when the new one is broken; SIGTERM
ends sessions with 421 4.3.2 within shutdown_grace and exits 0."""

import signal
import socket
import time

import pytest

from conftest import sanitizer_report
from helpers import ConnectionClosed, free_port, smtplib_send, wait_for

GRACE = 2


def reload_by_signal(relay, expect):
    offset = len(relay.log())
    relay.signal(signal.SIGHUP)

    def done():
        lines = [l for l in relay.log()[offset:].splitlines() if "server.reload" in l and "source=signal" in l]
        return lines[-1] if lines else None
    line = wait_for(done, timeout=30, what="the reload's log line")
    assert "result=%s" % expect in line, line
    return line


def rcpt_limit_seen(relay, n, port=None):
    """Open a new session and return the reply to the (n)th RCPT."""
    with relay.client() if port is None else relay.client(listener=port) as c:
        c.ehlo()
        c.expect("MAIL FROM:<limit@example.org>", 250)
        for i in range(n - 1):
            c.expect("RCPT TO:<r%d@example.net>" % i, 250, "2.1.5")
        return c.cmd("RCPT TO:<last@example.net>")


def test_sighup_applies_new_limits_and_listeners_to_new_sessions(relays):
    relay = relays.new(limits={"max_recipients": "2"})
    old = relay.client()
    old.ehlo()
    assert rcpt_limit_seen(relay, 3).is_(452, "4.5.3")

    relay.limits["max_recipients"] = "3"
    relay.listeners["extra"] = {"addrs": ["127.0.0.1"], "tls": "none", "auth": "off"}
    relay.ports["extra"] = free_port(v6=False)
    relay.write_config()
    reload_by_signal(relay, "ok")

    # New sessions see the new limit, on the old port and on the new one.
    assert rcpt_limit_seen(relay, 3).is_(250, "2.1.5")
    assert rcpt_limit_seen(relay, 4).is_(452, "4.5.3")
    assert rcpt_limit_seen(relay, 3, port="extra").is_(250, "2.1.5")
    qid = smtplib_send("127.0.0.1", relay.ports["extra"], "newport@example.org", ["r@example.net"],
                       b"Subject: new port\r\n\r\nhello\r\n")
    m = relay.show(qid)
    assert m["listener"] == "extra"
    # The session that started before the reload still works.
    old.envelope("old-session@example.org", ["a@example.net", "b@example.net"])
    r = old.data(b"Subject: old\r\n\r\nstill here\r\n")
    assert r.is_(250, "2.0.0"), r
    old.close()

    # Taking the listener out again closes its port.
    del relay.listeners["extra"]
    relay.write_config()
    p = relay.ctl("reload")
    assert p.returncode == 0, p.stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", relay.ports.pop("extra")), timeout=10).close()
    smtplib_send("127.0.0.1", relay.port, "still@example.org", ["r@example.net"], b"Subject: s\r\n\r\ns\r\n")


def test_broken_configuration_on_reload_keeps_the_running_one(relays):
    relay = relays.new(limits={"max_recipients": "2"})
    good = relay.config_text()
    bad = good.replace("tls = none", "tls = maybe").replace("max_recipients = 2", "max_recipients = 50")
    assert bad != good
    relay.write_config(bad)
    bad_line = bad.splitlines().index("tls = maybe") + 1
    line = reload_by_signal(relay, "refused")
    assert "%s:%d:" % (relay.conf, bad_line) in line, line
    # Still running, still serving, with the old limit.
    assert relay.running()
    assert rcpt_limit_seen(relay, 3).is_(452, "4.5.3")
    smtplib_send("127.0.0.1", relay.port, "after-bad@example.org", ["r@example.net"], b"Subject: x\r\n\r\nx\r\n")
    # detourctl reload reports the problem too, and fails.
    p = relay.ctl("reload")
    assert p.returncode != 0
    assert "%s:%d:" % (relay.conf, bad_line) in p.stderr, p.stderr
    assert relay.running()
    # A fixed file is taken again.
    relay.write_config(good.replace("max_recipients = 2", "max_recipients = 3"))
    p = relay.ctl("reload")
    assert p.returncode == 0, p.stderr
    assert rcpt_limit_seen(relay, 3).is_(250, "2.1.5")


def test_reload_that_cannot_bind_keeps_the_running_configuration(relays):
    relay = relays.new(limits={"max_recipients": "2"})
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        relay.limits["max_recipients"] = "7"
        relay.listeners["taken"] = {"addrs": ["127.0.0.1"]}
        relay.ports["taken"] = blocker.getsockname()[1]
        relay.write_config()
        reload_by_signal(relay, "refused")
    finally:
        blocker.close()
    assert rcpt_limit_seen(relay, 3).is_(452, "4.5.3")
    smtplib_send("127.0.0.1", relay.port, "x@example.org", ["r@example.net"], b"Subject: x\r\n\r\nx\r\n")


def _terminate_and_check(relay, sig=signal.SIGTERM, within=GRACE + 15):
    t0 = time.monotonic()
    relay.signal(sig)
    rc = relay.wait_exit(within)
    elapsed = time.monotonic() - t0
    bad = sanitizer_report(relay.log())
    relay.proc = None
    assert not bad, bad
    assert rc == 0, "exit status %s after %s:\n%s" % (rc, sig, relay.run_log()[-3000:])
    return elapsed


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_sigterm_tells_idle_clients_421_and_exits_0(relays, sig):
    relay = relays.new(server={"shutdown_grace": "%ds" % GRACE})
    banner_only = relay.client()
    after_ehlo = relay.client()
    after_ehlo.ehlo()
    t0 = time.monotonic()
    relay.signal(sig)
    for c in (banner_only, after_ehlo):
        r = c.reply(timeout=GRACE + 10)
        assert r.is_(421, "4.3.2"), r
        assert c.closed(10)
        c.close()
    rc = relay.wait_exit(GRACE + 15)
    assert rc == 0
    assert time.monotonic() - t0 <= GRACE + 10, "exit took longer than the grace period allows"
    assert not sanitizer_report(relay.log())
    relay.proc = None
    assert "server.exit" in relay.run_log()


def test_client_in_the_middle_of_data_gets_421_within_the_grace_period(relays):
    relay = relays.new(server={"shutdown_grace": "%ds" % GRACE})
    c = relay.client()
    c.ehlo()
    c.envelope("cut-off@example.org", ["r@example.net"])
    assert c.cmd("DATA").code == 354
    c.send(b"Subject: interrupted\r\n\r\nthe first half")
    t0 = time.monotonic()
    relay.signal(signal.SIGTERM)
    # New clients are not accepted once the daemon is stopping. A connect
    # that races the close of the listening socket is reset by the kernel
    # (it was in the accept queue when the socket went away): that is a
    # refusal too. A connect that completes is retried until the port is gone.
    def refused():
        try:
            socket.create_connection(("127.0.0.1", relay.port), timeout=5).close()
            return False
        except (ConnectionRefusedError, ConnectionResetError):
            return True
    wait_for(refused, timeout=GRACE + 5, what="the listener to close")
    r = c.reply(timeout=GRACE + 15)
    elapsed = time.monotonic() - t0
    assert r.is_(421, "4.3.2"), r
    assert elapsed <= GRACE + 5, "421 after %.1fs, grace is %ds" % (elapsed, GRACE)
    assert c.closed(10)
    c.close()
    rc = relay.wait_exit(15)
    relay.proc = None
    assert rc == 0
    assert not sanitizer_report(relay.log())
    assert relay.by_sender("cut-off@example.org") == []


def test_transaction_under_way_may_finish_during_the_grace_period(relays):
    relay = relays.new(server={"shutdown_grace": "20s"})
    c = relay.client()
    c.ehlo()
    c.expect("MAIL FROM:<finishing@example.org>", 250)
    relay.signal(signal.SIGTERM)
    c.expect("RCPT TO:<r@example.net>", 250, "2.1.5")
    r = c.data(b"Subject: last one\r\n\r\njust in time\r\n")
    assert r.is_(250, "2.0.0"), r
    # ...and then the session ends with 421 4.3.2 at the command boundary
    # (right away, or at the next command).
    try:
        try:
            r2 = c.reply(timeout=3)
        except TimeoutError:
            r2 = c.cmd("NOOP", timeout=15)
    except ConnectionClosed:
        r2 = None
    assert r2 is not None and r2.is_(421, "4.3.2"), r2
    c.close()
    rc = relay.wait_exit(30)
    relay.proc = None
    assert rc == 0
    assert [m["id"] for m in relay.by_sender("finishing@example.org")] == [r.qid]
