"""RFC 5321 4.5.3.2 timeouts: an idle client is told 421 4.4.2 and
disconnected; the command and the data timeouts are separate settings."""

import time

import pytest

from helpers import ConnectionClosed

SHORT = 2


@pytest.fixture(scope="module")
def cmd_short(module_relays):
    return module_relays.new(name="cmdshort", limits={"command_timeout": "%ds" % SHORT, "data_timeout": "60s"})


@pytest.fixture(scope="module")
def data_short(module_relays):
    return module_relays.new(name="datashort", limits={"command_timeout": "60s", "data_timeout": "%ds" % SHORT})


def _expect_timeout(c, started, low, high=20.0):
    """The next reply is 421 4.4.2, between low and high seconds after
    started, and the connection closes."""
    r = c.reply(timeout=high + 5)
    elapsed = time.monotonic() - started
    assert r.is_(421, "4.4.2"), r
    assert low <= elapsed <= high, "timed out after %.1fs, expected %s..%ss" % (elapsed, low, high)
    assert c.closed(10), "still open after the timeout reply"


# States a client can idle in while the command timeout runs, set up on
# connections that all wait at the same time.
IDLE_STATES = {
    "after-banner": [],
    "after-ehlo": ["EHLO idle.example"],
    "in-transaction": ["EHLO idle.example", "MAIL FROM:<idle@example.org>", "RCPT TO:<r@example.net>"],
}


def test_idle_clients_get_421_after_the_command_timeout(cmd_short):
    conns = {}
    for name, cmds in IDLE_STATES.items():
        c = cmd_short.client()
        for line in cmds:
            assert c.cmd(line).code == 250
        conns[name] = (c, time.monotonic())
    partial = cmd_short.client()
    partial.ehlo()
    partial.send(b"NOOP but no end of line")
    conns["partial-command"] = (partial, time.monotonic())
    try:
        for name, (c, t0) in conns.items():
            _expect_timeout(c, t0, SHORT - 0.5)
    finally:
        for c, _ in conns.values():
            c.close()
    assert cmd_short.by_sender("idle@example.org") == []
    cmd_short.wait_log("reason=timeout")


def test_command_timeout_does_not_apply_inside_data(cmd_short):
    """Data blocks have their own (here: long) timeout."""
    with cmd_short.client() as c:
        c.ehlo()
        c.envelope("slow-data@example.org", ["r@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: slow\r\n\r\nfirst line\r\n")
        # Twice the command timeout without a byte: still fine.
        assert c.nothing_pending(SHORT + 1.5), "the command timeout cut a DATA phase: %r" % c.buf
        c.send(b"last line\r\n.\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r


def test_idle_client_in_data_gets_421_after_the_data_timeout(data_short):
    with data_short.client() as c:
        c.ehlo()
        c.envelope("stalled@example.org", ["r@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: stalled\r\n\r\nhalf a li")
        _expect_timeout(c, time.monotonic(), SHORT - 0.5)
    assert data_short.by_sender("stalled@example.org") == []


def test_idle_client_in_bdat_gets_421_after_the_data_timeout(data_short):
    with data_short.client() as c:
        c.ehlo()
        c.envelope("stalled-bdat@example.org", ["r@example.net"])
        c.send(b"BDAT 100 LAST\r\nonly forty octets of the hundred announced")
        _expect_timeout(c, time.monotonic(), SHORT - 0.5)
    assert data_short.by_sender("stalled-bdat@example.org") == []


def test_data_timeout_is_per_block_not_per_message(data_short):
    """A slow but steady client (a block every half timeout) is not cut off,
    even though the whole message takes longer than the timeout."""
    with data_short.client() as c:
        c.ehlo()
        c.envelope("trickle@example.org", ["r@example.net"])
        assert c.cmd("DATA").code == 354
        t0 = time.monotonic()
        c.send(b"Subject: trickle\r\n\r\n")
        lines = 0
        while time.monotonic() - t0 < SHORT + 1.5:
            assert c.nothing_pending(SHORT / 2), "cut off: %r" % c.buf
            c.send(b"line %d\r\n" % lines)
            lines += 1
        c.send(b".\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
    assert data_short.cat(r.qid).endswith(b"line %d\r\n" % (lines - 1))


def test_command_timeout_is_long_while_data_timeout_is_short(data_short):
    """The short data timeout does not apply between commands."""
    with data_short.client() as c:
        c.ehlo()
        assert c.nothing_pending(SHORT + 1.5), "cut off between commands: %r" % c.buf
        assert c.cmd("NOOP").is_(250)
