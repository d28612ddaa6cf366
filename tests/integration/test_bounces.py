"""Bounces (RFC 3464) and the routing outcomes that end in one: what the
sender gets back when a recipient fails for good, how the remote's words
are carried (sanitised), null MX, NXDOMAIN, SERVFAIL, the implicit MX,
loopback MX hosts, mail loops, null senders, max_age, delay warnings and
SMTPUTF8.

Every bounce is delivered like any message, to the MX of the sender's
domain (sender.test -> 127.0.0.9 here), where a scripted server keeps its
exact octets; Python's email package then parses it.
"""

import re
import time

import pytest

from helpers import split_received
from mailworld import (DSN, SPECIAL, events, new_relay, no_violations, rcpt_states, results, simple_zone, submit,
                       unparsable_lines, wait_gone, wait_until)

SENDER = "alice@sender.test"


def bounce_world(world, zone_extra=None, **domains):
    zone = simple_zone(sender_test="127.0.0.9", **domains)
    zone.update(zone_extra or {})
    world.start_dns(zone)
    return world.scripted("127.0.0.9", name="sender's MX", extensions=("PIPELINING", "8BITMIME", "SMTPUTF8",
                                                                        "ENHANCEDSTATUSCODES", "SIZE 100000000"))


def one_bounce(home, timeout=20):
    wait_until(lambda: home.delivered(), timeout, what="a bounce at the sender's MX")
    time.sleep(1.0)  # a second one would come now
    got = home.delivered()
    assert len(got) == 1, "expected exactly one bounce, got %d" % len(got)
    b = got[0]
    assert b.mail_from == "", "a bounce is sent from the null reverse-path, not <%s>" % b.mail_from
    assert b.accepted == [SENDER], b.accepted
    return b


# -- the bounce itself ------------------------------------------------------------

def test_permanent_failure_bounce_is_an_rfc3464_report(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: (b"550 5.1.1 <gone@dest.test>: no such user" if addr.startswith("gone")
                                      else b"250 2.1.5 ok")
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["gone@dest.test", "here@dest.test"], SPECIAL,
                 " ENVID=my-envelope-1", " NOTIFY=FAILURE ORCPT=rfc822;gone@dest.test")
    wait_gone(relay, qid)
    b = one_bounce(home)
    dsn = DSN(b.content)
    m = dsn.msg
    assert m["Auto-Submitted"] and m["Auto-Submitted"].startswith("auto-replied"), m["Auto-Submitted"]
    assert m["To"] and SENDER in m["To"]
    assert m["From"] and "relay.test" in m["From"]
    assert m["Date"] and m["Message-ID"] and m["Subject"]
    pm = dsn.per_message
    assert pm.get("reporting-mta") == "dns; relay.test", pm
    assert "arrival-date" in pm, pm
    assert pm.get("original-envelope-id") == "my-envelope-1", pm
    assert dsn.recipients() == ["gone@dest.test"], "the report names exactly the failed recipient"
    r = dsn.per_rcpt[0]
    assert r["final-recipient"] == "rfc822; gone@dest.test"
    assert r["original-recipient"] == "rfc822; gone@dest.test", r
    assert r["action"] == "failed"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", r["status"]) and r["status"] == "5.1.1", r
    assert r["diagnostic-code"] == "smtp; 550 5.1.1 <gone@dest.test>: no such user", r
    # The human part names the failed recipient only, and the original
    # follows whole (RET not given: the full message).
    human = dsn.text.get_payload(decode=True)
    assert b"gone@dest.test" in human and b"here@dest.test" not in human
    assert dsn.original_part.get_content_type() == "message/rfc822"
    orig = dsn.original_bytes()
    received, rest = split_received(orig)
    assert rest.rstrip(b"\r\n") == SPECIAL.rstrip(b"\r\n"), "the original is not returned as it was"
    no_violations(home, mx)
    # Every bounce is queued like a message and logged.
    assert any(e.get("qid") == qid and e.get("bounce_qid") for e in events(relay, "delivery.bounce"))


def test_bounce_remote_mta_is_a_host_name(relays, world):
    """RFC 3464 2.3.5: "Remote-MTA: dns; NAME" names the host; the address
    and port in brackets are not part of a DNS name (they may go in a
    comment or an X- field)."""
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"550 5.1.1 no"
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@dest.test"], SPECIAL)
    wait_gone(relay, qid)
    r = DSN(one_bounce(home).content).per_rcpt[0]
    assert "remote-mta" in r, r
    kind, _, name = r["remote-mta"].partition(";")
    assert kind.strip().lower() == "dns", r
    assert re.fullmatch(r"[A-Za-z0-9.-]+", name.strip()), "Remote-MTA is not a DNS name: %r" % r["remote-mta"]
    assert name.strip() == "mx.dest.test", r


def test_ret_hdrs_returns_only_the_headers(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"550 5.7.1 rejected"
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@dest.test"], SPECIAL, " RET=HDRS")
    wait_gone(relay, qid)
    dsn = DSN(one_bounce(home).content)
    assert dsn.original_part.get_content_type() == "text/rfc822-headers"
    orig = dsn.original_bytes()
    assert b"Subject: dots and bytes" in orig and b"leading dot" not in orig


def test_notify_never_means_no_bounce(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"550 5.1.1 no"
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@dest.test"], SPECIAL, "", " NOTIFY=NEVER")
    wait_gone(relay, qid)
    time.sleep(2)
    assert home.delivered() == [] and home.n_sessions() == 0


def test_bounce_of_an_8bit_message_is_declared_8bitmime(relays, world):
    """The returned original holds 8-bit octets: the bounce's MAIL FROM
    carries BODY=8BITMIME to an MX that offers it (RFC 6152)."""
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"550 5.1.1 no"
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@dest.test"], SPECIAL, " BODY=8BITMIME")
    wait_gone(relay, qid)
    b = one_bounce(home)
    assert any(max(l) >= 0x80 for l in b.content.split(b"\r\n") if l), "test premise: 8-bit octets returned"
    assert b"BODY=8BITMIME" in [p.upper() for p in b.mail_params], \
        "bounce with 8-bit content sent as %r" % (b.mail_line,)


MALICIOUS = {
    "escape": b"550 5.1.1 \x1b[31mred alert\x1b[0m \x07bell\x08",
    "header-lookalike": (b"550-5.1.1 no such user\r\n"
                         b"550-5.1.1 Content-Type: text/html\r\n"
                         b"550-5.1.1 \r\n"
                         b"550-5.1.1 --boundary--\r\n"
                         b"550 5.1.1 Final-Recipient: rfc822; attacker@evil.test"),
    "long": b"550 5.1.1 " + b"A" * 490,
    "many-lines": b"".join(b"550-5.1.1 line %d Action: delivered\r\n" % i for i in range(99)) + b"550 5.1.1 end",
    "binary-8bit": b"550 5.1.1 caf\xc3\xa9 \xff\xfe\x80 \x7f end",
}


@pytest.mark.parametrize("kind", list(MALICIOUS))
def test_remote_text_is_sanitised_in_the_bounce(relays, world, kind):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: MALICIOUS[kind] + b"\r\n"
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["victim@dest.test"], b"Subject: plain\r\n\r\nseven bit only\r\n")
    wait_gone(relay, qid)
    b = one_bounce(home)
    dsn = DSN(b.content)   # parses, no defects, exactly three parts
    assert dsn.recipients() == ["victim@dest.test"]
    assert len(dsn.per_rcpt) == 1, dsn.per_rcpt
    r = dsn.per_rcpt[0]
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    diag = r["diagnostic-code"]
    assert isinstance(diag, str) and diag.startswith("smtp; 550"), r
    # No control octets anywhere but CRLF line ends; the per-recipient
    # block has only its own fields.
    body = b.content
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", body), "control octets in the bounce"
    assert not re.search(rb"\r(?!\n)|(?<!\r)\n", body), "bare CR or LF in the bounce"
    assert set(r) <= {"final-recipient", "original-recipient", "action", "status", "remote-mta",
                      "diagnostic-code", "last-attempt-date", "will-retry-until", "x-detour-queue-id"}, r
    # RFC 3464 2.1: the delivery-status fields are US-ASCII (UTF-8 only in
    # message/global-delivery-status, RFC 6533): the remote's 8-bit octets
    # must not be copied raw.
    assert max(dsn.status_raw) < 0x80, \
        "8-bit octets from the remote's reply copied raw into message/delivery-status: %r" % (
            [l for l in dsn.status_raw.split(b"\r\n") if max(l or b"\0") >= 0x80],)
    human = dsn.text.get_payload(decode=True)
    assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", human)
    # Lines stay within RFC 5322's 998 octets.
    assert max(len(l) for l in body.split(b"\r\n")) <= 998
    if kind == "header-lookalike":
        # Still one line, one field: the fake fields are text inside it.
        assert "Content-Type: text/html" in diag and "Final-Recipient" in diag
    assert not unparsable_lines(relay)


def test_message_larger_than_the_mx_size_limit_bounces_5_3_4(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2", extensions=("PIPELINING", "SIZE 1000", "8BITMIME"))
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@dest.test"], b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 40)
    wait_gone(relay, qid)
    assert mx.all_txns() == [], "a message over the MX's SIZE was sent anyway"
    dsn = DSN(one_bounce(home).content)
    assert dsn.per_rcpt[0]["status"] == "5.3.4", dsn.per_rcpt


# -- routing outcomes --------------------------------------------------------------

def test_null_mx_bounces_5_1_10_without_connecting(relays, world):
    home = bounce_world(world, {"nullmx.test": {"MX": [[0, "."]], "A": ["127.0.0.2"]}})
    bait = world.scripted("127.0.0.2")   # the domain's A record: must not be used
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@nullmx.test"], SPECIAL)
    wait_gone(relay, qid)
    dsn = DSN(one_bounce(home).content)
    assert dsn.per_rcpt[0]["status"] == "5.1.10", dsn.per_rcpt
    assert bait.n_sessions() == 0, "connected to a null-MX domain"
    assert not [e for e in events(relay, "delivery.connect_failed")]
    [r] = results(relay, qid)
    assert r["result"] == "failed" and r["dsn"] == "5.1.10" and r["relay"] == "none", r


def test_nxdomain_bounces_5_1_2(relays, world):
    home = bounce_world(world)   # nothing for nowhere.test: NXDOMAIN
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@nowhere.test"], SPECIAL)
    wait_gone(relay, qid)
    dsn = DSN(one_bounce(home).content)
    assert dsn.per_rcpt[0]["status"] == "5.1.2", dsn.per_rcpt
    [r] = results(relay, qid)
    assert r["result"] == "failed" and r["dsn"] == "5.1.2", r


def test_servfail_defers_and_never_bounces(relays, world):
    home = bounce_world(world, {"broken.test": {"SERVFAIL": True}})
    relay = new_relay(relays, world, {"retry": "1s"})
    qid = submit(relay, SENDER, ["x@broken.test"], SPECIAL)
    wait_until(lambda: len(results(relay, qid)) >= 2, 20, what="two attempts")
    rs = results(relay, qid)
    assert all(r["result"] == "deferred" and r["dsn"].startswith("4.") for r in rs), rs
    assert rcpt_states(relay, qid)["x@broken.test"]["state"] == "deferred"
    assert home.n_sessions() == 0, "a bounce for a temporary DNS failure"


def test_dns_timeout_defers(relays, world):
    home = bounce_world(world, {"blackhole.test": {"TIMEOUT": True}})
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, SENDER, ["x@blackhole.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 40, what="the attempt to end")
    [r] = results(relay, qid)
    assert r["result"] == "deferred" and r["dsn"].startswith("4."), r
    assert home.n_sessions() == 0


def test_no_mx_but_an_address_is_the_implicit_mx(relays, world):
    home = bounce_world(world, {"implicit.test": {"A": ["127.0.0.2"]}})
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["x@implicit.test"], SPECIAL)
    wait_gone(relay, qid)
    assert len(mx.delivered_to("x@implicit.test")) == 1
    [r] = results(relay, qid)
    assert r["result"] == "delivered" and r["relay"] == "implicit.test[127.0.0.2]:%d" % world.port, r
    assert home.n_sessions() == 0


def test_loopback_mx_is_refused_without_allow_loopback_mx(relays, world):
    """dns_route.c: a route whose only addresses are loopback is an
    unusable route, a permanent 5.4.4 (never a connection there). The bounce
    to sender.test (loopback too) fails the same way and, being from the
    null sender, is dropped."""
    home = bounce_world(world, {"lo.test": {"MX": [[10, "mx.lo.test"]]},
                                "mx.lo.test": {"A": ["127.0.0.1", "127.0.0.2"]}})
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world, {"allow_loopback_mx": "no"})
    qid = submit(relay, SENDER, ["x@lo.test"], SPECIAL)
    wait_gone(relay, qid)
    [r] = results(relay, qid)
    assert r["result"] == "failed" and r["dsn"] == "5.4.4", r
    assert mx.n_sessions() == 0 and home.n_sessions() == 0, "connected to a loopback MX"
    wait_until(lambda: events(relay, "delivery.bounce_dropped"), 20, what="the bounce to be dropped")
    wait_until(lambda: relay.queue() == [], 20, what="an empty queue")


def test_mx_that_is_this_relay_is_a_loop_5_4_6(relays, world):
    home = bounce_world(world, {"loop.test": {"MX": [[10, "relay.test"]]},
                                "relay.test": {"A": ["127.0.0.2"]}})
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world)   # hostname = relay.test
    qid = submit(relay, SENDER, ["x@loop.test"], SPECIAL)
    wait_gone(relay, qid)
    dsn = DSN(one_bounce(home).content)
    assert dsn.per_rcpt[0]["status"] == "5.4.6", dsn.per_rcpt
    assert mx.n_sessions() == 0


def test_only_mx_hosts_more_preferred_than_ourselves_are_used(relays, world):
    home = bounce_world(world, {"backup.test": {"MX": [[5, "primary.backup.test"], [10, "relay.test"],
                                                       [20, "worse.backup.test"]]},
                                "primary.backup.test": {"A": ["127.0.0.2"]},
                                "worse.backup.test": {"A": ["127.0.0.3"]},
                                "relay.test": {"A": ["127.0.0.4"]}})
    primary = world.scripted("127.0.0.2")
    primary.greeting = lambda s: b"421 4.3.2 not now"
    worse = world.scripted("127.0.0.3")
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, SENDER, ["x@backup.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 20, what="the attempt")
    [r] = results(relay, qid)
    assert r["result"] == "deferred", r
    assert worse.n_sessions() == 0, "an MX less preferred than this relay was used"
    assert primary.n_sessions() >= 1
    assert home.n_sessions() == 0


# -- who gets a bounce ---------------------------------------------------------------

def test_null_sender_failure_is_dropped_not_bounced(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"550 5.1.1 no"
    relay = new_relay(relays, world)
    qid = submit(relay, "", ["x@dest.test"], SPECIAL)
    wait_gone(relay, qid)
    time.sleep(1)
    assert [e for e in events(relay, "delivery.bounce_dropped") if e.get("qid") == qid]
    assert not [e for e in events(relay, "delivery.bounce") if e.get("qid") == qid]
    assert relay.queue() == []
    assert home.n_sessions() == 0


def test_max_age_gives_exactly_one_bounce_then_the_message_is_gone(relays, world):
    """max_age = 60s is the smallest the configuration takes (config.c), so
    this test lasts a minute."""
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"451 4.3.0 come back later"
    relay = new_relay(relays, world, {"retry": "1s", "max_age": "60s"})
    t0 = time.monotonic()
    qid = submit(relay, SENDER, ["x@dest.test"], SPECIAL)
    wait_gone(relay, qid, timeout=90)
    elapsed = time.monotonic() - t0
    assert 55 <= elapsed <= 80, "gave up after %.0fs with max_age = 60s" % elapsed
    b = one_bounce(home, timeout=20)
    time.sleep(2)
    assert len(home.delivered()) == 1
    dsn = DSN(b.content)
    r = dsn.per_rcpt[0]
    assert r["action"] == "failed" and re.fullmatch(r"[45]\.\d{1,3}\.\d{1,3}", r["status"]), r
    assert "come back later" in r.get("diagnostic-code", ""), r
    rs = results(relay, qid)
    assert rs[-1]["result"] == "expired" and all(x["result"] == "deferred" for x in rs[:-1]), rs
    assert relay.queue() == []
    # Last, as it is a detail: the text the sender gets says why in words
    # that are true for a 60 s max_age (everything above worked).
    assert "0 days" not in r.get("diagnostic-code", ""), r


def test_delay_warning_is_sent_once_and_only_where_asked(relays, world):
    """[delivery] delay_warning: after that long in the queue the sender
    hears once per recipient that it is still being retried (RFC 3464
    "delayed", headers only), unless NOTIFY leaves DELAY out; a null
    sender is never told. The message itself stays queued."""
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"451 4.3.0 come back later"
    relay = new_relay(relays, world, {"retry": "1s", "delay_warning": "2s"})
    t0 = time.monotonic()
    warned = submit(relay, SENDER, ["slow@dest.test"], SPECIAL, " RET=FULL")
    quiet = submit(relay, SENDER, ["quiet@dest.test"], SPECIAL, "", " NOTIFY=FAILURE")
    nobody = submit(relay, "", ["null@dest.test"], SPECIAL)
    for qid in (warned, quiet, nobody):
        wait_until(lambda: len(results(relay, qid)) >= 5, 30, what="five attempts of %s" % qid)
    b = one_bounce(home)
    assert time.monotonic() - t0 >= 2, "warned before delay_warning had passed"
    dsn = DSN(b.content)
    assert dsn.msg["Subject"] == "Delayed Mail (still being retried)", dsn.msg["Subject"]
    assert dsn.recipients() == ["slow@dest.test"], dsn.recipients()
    r = dsn.per_rcpt[0]
    assert r["action"] == "delayed" and r["status"] == "4.3.0", r
    assert r["diagnostic-code"] == "smtp; 451 4.3.0 come back later", r
    assert "will-retry-until" in r, r
    # headers only, although RET=FULL: the message is not being returned
    assert dsn.original_part.get_content_type() == "text/rfc822-headers"
    assert b"Subject: dots and bytes" in dsn.original_bytes()
    # still queued, still retried, and no second warning
    assert rcpt_states(relay, warned)["slow@dest.test"]["state"] == "deferred"
    # detourctl shows which recipients have been warned about
    assert rcpt_states(relay, warned)["slow@dest.test"]["delay_warning_sent"] is True
    assert rcpt_states(relay, quiet)["quiet@dest.test"]["delay_warning_sent"] is False
    shown = relay.ctl("queue", "show", warned)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^recipient: <slow@dest\.test> state=deferred attempts=\d+ delay_warning=sent ",
                     shown.stdout, re.M), shown.stdout
    n = len(results(relay, warned))
    wait_until(lambda: len(results(relay, warned)) >= n + 2, 20, what="two more attempts")
    assert len(home.delivered()) == 1, "a second delay warning"
    dropped = [e for e in events(relay, "delivery.bounce_dropped") if e.get("qid") == nobody]
    assert len(dropped) == 1, dropped
    assert [e["qid"] for e in events(relay, "delivery.bounce")] == [warned]
    assert all(x["result"] == "deferred" for q in (warned, quiet, nobody) for x in results(relay, q))
    no_violations(home, mx)


def test_smtputf8_message_to_an_mx_without_smtputf8_bounces_5_6_7(relays, world):
    home = bounce_world(world, dest_test="127.0.0.2")
    mx = world.scripted("127.0.0.2", extensions=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"))
    relay = new_relay(relays, world)
    qid = submit(relay, SENDER, ["j\u00fcrgen@dest.test"],
                 "Subject: gr\u00fc\u00dfe\r\n\r\nhallo\r\n".encode(), " SMTPUTF8 BODY=8BITMIME")
    wait_gone(relay, qid)
    assert mx.all_txns() == [], "MAIL was sent to a server without SMTPUTF8"
    b = one_bounce(home)
    dsn = DSN(b.content)
    r = dsn.per_rcpt[0]
    assert r["status"] == "5.6.7", r
    assert "j\u00fcrgen@dest.test" in r["final-recipient"], r
    [res] = results(relay, qid)
    assert res["result"] == "failed" and res["dsn"] == "5.6.7", res


# -- loop protection at the door ------------------------------------------------------

@pytest.mark.parametrize("n,accepted", [(50, True), (51, False)])
def test_too_many_received_headers_are_refused_at_data(relays, world, n, accepted):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world)
    hdrs = b"".join(b"Received: from hop%d.test by hop%d.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n" % (i, i + 1)
                    for i in range(n))
    body = hdrs + b"Subject: loop\r\n\r\nround and round\r\n"
    with relay.client() as c:
        c.ehlo()
        c.envelope(SENDER, ["x@dest.test"])
        r = c.data(body)
    if accepted:
        assert r.code == 250, r
        wait_until(lambda: mx.delivered(), 20, what="delivery")
    else:
        assert r.code == 554 and r.enh == "5.4.6", r
        time.sleep(1)
        assert relay.queue() == [] and mx.n_sessions() == 0
