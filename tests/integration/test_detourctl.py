"""detourctl beside a running detourd: the queue (list, show, cat, hold,
release, delete), status and reload, and its exit codes (sysexits.h)."""

import re

import pytest

from helpers import assert_stored_exactly, make_body, smtplib_send

EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 64, 65, 69
MISSING_ID = "0000000000000000"   # well-formed, never issued


@pytest.fixture(scope="module")
def busy(module_relays):
    """A relay with three messages in its queue."""
    r = module_relays.new(name="ctl")
    r.msgs = []
    for i, rcpts in enumerate([["a@example.net"], ["b@example.net", "c@example.net"], ["d@example.net"]]):
        body = make_body(2000 + 1000 * i, seed=300 + i)
        qid = smtplib_send("127.0.0.1", r.port, "ctl%d@example.org" % i, rcpts, body)
        r.msgs.append((qid, "ctl%d@example.org" % i, rcpts, body))
    return r


def test_queue_list_json_has_every_field(busy):
    msgs = {m["id"]: m for m in busy.queue()}
    for qid, sender, rcpts, body in busy.msgs:
        m = msgs[qid]
        assert m["sender"] == sender
        assert [(x["address"], x["state"]) for x in m["recipients"]] == [(a, "queued") for a in rcpts]
        assert isinstance(m["size"], int) and m["size"] > len(body)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", m["arrival"]), m["arrival"]
        assert m["listener"] == "plain"
        assert m["client_address"] == "127.0.0.1"
        assert "account" in m and m["account"] is None
        assert m["held"] is False
    # oldest first
    assert [m["id"] for m in busy.queue()][:3] == [q for q, *_ in busy.msgs]


def test_queue_list_human_shows_every_message_and_a_total(busy):
    p = busy.ctl("queue", "list")
    assert p.returncode == 0, p.stderr
    for qid, sender, rcpts, _ in busy.msgs:
        assert re.search(r"^%s\s+\d+\s+\S+\s+<%s>" % (qid, re.escape(sender)), p.stdout, re.M), p.stdout
        for a in rcpts:
            assert re.search(r"<%s>\s+queued" % re.escape(a), p.stdout), p.stdout
    total = sum(m["size"] for m in busy.queue())
    assert re.search(r"-- %d messages, %d bytes" % (len(busy.queue()), total), p.stdout), p.stdout


def test_queue_show_json_and_human(busy):
    qid, sender, rcpts, body = busy.msgs[1]
    m = busy.show(qid)
    assert m["id"] == qid and m["sender"] == sender
    assert [x["address"] for x in m["recipients"]] == rcpts
    for x in m["recipients"]:
        assert x["attempts"] == 0 and x["last_result"] is None
    assert m["helo"] == "client.test"
    assert m["tls"] is None
    p = busy.ctl("queue", "show", qid)
    assert p.returncode == 0
    assert "id: %s" % qid in p.stdout and "sender: <%s>" % sender in p.stdout
    assert "client_address: 127.0.0.1" in p.stdout and "listener: plain" in p.stdout
    for a in rcpts:
        assert "recipient: <%s> state=queued" % a in p.stdout


def test_queue_cat_prints_the_message(busy):
    for qid, _, rcpts, body in busy.msgs:
        assert_stored_exactly(busy, qid, body)


def test_hold_and_release_change_the_held_flag(busy):
    qid = busy.msgs[0][0]
    p = busy.ctl("queue", "hold", qid)
    assert p.returncode == 0 and "held" in p.stdout, (p.stdout, p.stderr)
    assert busy.show(qid)["held"] is True
    assert {m["id"]: m["held"] for m in busy.queue()}[qid] is True
    assert "(held)" in busy.ctl("queue", "list").stdout
    # holding twice is fine
    assert busy.ctl("queue", "hold", qid).returncode == 0
    p = busy.ctl("queue", "release", qid)
    assert p.returncode == 0 and "released" in p.stdout
    assert busy.show(qid)["held"] is False
    assert "(held)" not in busy.ctl("queue", "list").stdout


def test_delete_removes_the_message(relays):
    r = relays.new()
    keep = smtplib_send("127.0.0.1", r.port, "keep@example.org", ["k@example.net"], b"Subject: k\r\n\r\nkeep\r\n")
    gone = smtplib_send("127.0.0.1", r.port, "gone@example.org", ["g@example.net"], b"Subject: g\r\n\r\ngone\r\n")
    p = r.ctl("queue", "delete", gone)
    assert p.returncode == 0 and "deleted" in p.stdout, (p.stdout, p.stderr)
    assert r.queue_ids() == [keep]
    for cmd in (("queue", "show", gone), ("queue", "cat", gone), ("queue", "delete", gone)):
        p = r.ctl(*cmd)
        assert p.returncode == EX_DATAERR, (cmd, p.returncode, p.stderr)
        assert "no such message" in p.stderr, p.stderr
    status = r.ctl("status").stdout
    assert "queue_messages: 1" in status, status


@pytest.mark.parametrize("cmd", ["show", "cat", "hold", "release", "delete"])
def test_unknown_id_is_an_error_with_a_clear_message(busy, cmd):
    p = busy.ctl("queue", cmd, MISSING_ID)
    assert p.returncode == EX_DATAERR, (p.returncode, p.stderr)
    assert MISSING_ID in p.stderr and "no such message" in p.stderr, p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("cmd", ["show", "cat", "hold", "release", "delete"])
def test_malformed_id_is_refused_before_anything_happens(busy, cmd):
    p = busy.ctl("queue", cmd, "../../etc/passwd")
    assert p.returncode == EX_DATAERR, (p.returncode, p.stderr)
    assert "not a queue id" in p.stderr, p.stderr


def test_status_reports_uptime_connections_and_queue(busy):
    with busy.client() as c:
        c.ehlo()
        p = busy.ctl("status")
    assert p.returncode == 0, p.stderr
    fields = dict(re.findall(r"^(\w+): (.*)$", p.stdout, re.M))
    assert int(fields["uptime_seconds"]) >= 0
    assert int(fields["connections"]) >= 1
    assert int(fields["queue_messages"]) == len(busy.queue())
    assert fields["hostname"] == "relay.test"
    assert int(fields["pid"]) == busy.pid


def test_reload_while_running(busy):
    p = busy.ctl("reload")
    assert p.returncode == 0, p.stderr
    assert "reloaded" in p.stdout
    with busy.client() as c:
        c.ehlo()


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["queue"],
    ["queue", "show"],
    ["queue", "cat"],
    ["queue", "list", "extra"],
    ["queue", "delete", "A", "B"],
    ["queue", "list", "--bogus"],
    ["status", "now"],
    ["-x", "status"],
], ids=lambda a: " ".join(a) or "no-arguments")
def test_usage_errors_exit_64(busy, args):
    p = busy.ctl(*args)
    assert p.returncode == EX_USAGE, (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip(), "a usage error must say what is wrong"


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["queue", "list", "--help"]], ids=" ".join)
def test_help_exits_0(busy, args):
    p = busy.ctl(*args)
    assert p.returncode == 0 and "queue list" in p.stdout, (p.returncode, p.stderr)


def test_commands_that_need_the_daemon_fail_cleanly_without_it(relays):
    r = relays.new()
    qid = smtplib_send("127.0.0.1", r.port, "x@example.org", ["y@example.net"], b"Subject: x\r\n\r\nx\r\n")
    r.stop()
    for cmd in (("status",), ("reload",), ("queue", "hold", qid), ("queue", "delete", qid)):
        p = r.ctl(*cmd)
        assert p.returncode == EX_UNAVAILABLE, (cmd, p.returncode, p.stderr)
        assert p.stderr.strip(), "no message for %r" % (cmd,)
    # Reading the queue needs no daemon.
    assert [m["id"] for m in r.queue()] == [qid]
