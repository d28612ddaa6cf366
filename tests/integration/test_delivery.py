"""Delivery like a real MTA (issue 4): detourd hands each message to the MX
hosts of its recipients' domains, found through a DNS server on loopback,
and the MX hosts are real SMTP servers on 127.0.0.x: a scripted one written
for these tests (exact wire octets), aiosmtpd and Postfix's smtp-sink.

This file: byte-exact delivery and the envelope, MX choice and fallback,
timeouts, retries, per-recipient results, malformed replies, connection
reuse and concurrency, queue flush/hold, logs. Bounces, DNS outcomes and
loops are in test_bounces.py; STARTTLS, smarthost chains and crashes in
test_smarthost.py.
"""

import time

import pytest

from helpers import dot_stuff, make_body, split_received
from mailworld import (CLOSE, DSN, SPECIAL, Delay, events, new_relay, no_violations, rcpt_states, results, simple_zone,
                       submit, unparsable_lines, wait_gone, wait_until)


# -- byte-exact delivery -----------------------------------------------------

@pytest.mark.parametrize("size", [0, 1024 * 1024])
def test_data_on_the_wire_is_queue_cat_dot_stuffed_crlf_only(relays, world, size):
    """What the MX reads after DATA, unstuffed, is exactly `queue cat`; on
    the wire every line that starts with '.' is stuffed, and every line
    ends in CRLF."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world, {"pause": "yes"})
    body = SPECIAL if size == 0 else make_body(size, seed=7)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], body, " BODY=8BITMIME")
    stored = relay.cat(qid)
    assert split_received(stored)[1] == body
    assert relay.ctl("delivery", "resume").returncode == 0
    wait_gone(relay, qid)
    got = mx.delivered()
    assert len(got) == 1, [t.dot_reply for t in mx.all_txns()]
    t = got[0]
    assert t.content == stored, "the MX received other octets than `queue cat` shows"
    assert t.data_wire == dot_stuff(stored) + b".\r\n", "the wire form is not the dot-stuffed message"
    assert b"\n" not in t.data_wire.replace(b"\r\n", b"") and b"\r" not in t.data_wire.replace(b"\r\n", b"")
    no_violations(mx)


def test_aiosmtpd_receives_exactly_queue_cat(relays, world):
    """The same with an independent server (aiosmtpd unstuffs by itself)."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    aio = world.aio("127.0.0.2")
    relay = new_relay(relays, world, {"pause": "yes"})
    qid = submit(relay, "a@sender.test", ["b@dest.test", "c@dest.test"], SPECIAL, " BODY=8BITMIME")
    stored = relay.cat(qid)
    relay.ctl("delivery", "resume")
    wait_gone(relay, qid)
    assert len(aio.envelopes) == 1, aio.envelopes
    e = aio.envelopes[0]
    assert e["content"] == stored
    assert e["mail_from"] == "a@sender.test"
    assert sorted(e["rcpt_tos"]) == ["b@dest.test", "c@dest.test"]
    # aiosmtpd offers SIZE and 8BITMIME (not DSN): both parameters are sent.
    assert "BODY=8BITMIME" in e["mail_options"], e["mail_options"]
    assert "SIZE=%d" % len(stored) in e["mail_options"], (e["mail_options"], len(stored))


def test_envelope_size_8bitmime_and_dsn_parameters_are_passed_on(relays, world):
    """MAIL FROM and RCPT TO as the client sent them; SIZE= the size that is
    sent, BODY=8BITMIME, and the DSN parameters (RET, ENVID, NOTIFY, ORCPT)
    when the MX offers DSN."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world, {"pause": "yes"})
    qid = submit(relay, "Mixed.Case+tag@sender.test", ["First.Last@dest.test"], SPECIAL,
                 " BODY=8BITMIME RET=HDRS ENVID=env+2Bid-42",
                 " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Bx@dest.test")
    stored = relay.cat(qid)
    relay.ctl("delivery", "resume")
    wait_gone(relay, qid)
    [t] = mx.delivered()
    assert t.mail_from == "Mixed.Case+tag@sender.test"
    assert [r[0] for r in t.rcpts] == ["First.Last@dest.test"]
    mp = [p.decode() for p in t.mail_params]
    rp = [p.decode() for p in t.rcpts[0][1]]
    assert "SIZE=%d" % len(stored) in mp, mp
    assert "BODY=8BITMIME" in mp, mp
    assert "RET=HDRS" in mp, mp
    assert "ENVID=env+2Bid-42" in mp, mp
    assert any(p.upper() == "NOTIFY=SUCCESS,FAILURE" for p in rp), rp
    assert "ORCPT=rfc822;orig+2Bx@dest.test" in rp, rp
    no_violations(mx)


def test_no_dsn_or_8bitmime_parameters_to_an_mx_that_does_not_offer_them(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2", extensions=("PIPELINING",))
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL, " BODY=8BITMIME RET=FULL ENVID=x",
                 " NOTIFY=FAILURE")
    wait_gone(relay, qid)
    [t] = mx.delivered()
    assert t.mail_params == [], t.mail_line
    assert t.rcpts[0][1] == [], t.rcpts
    no_violations(mx)


def test_one_message_to_three_domains_each_mx_gets_its_own_recipients(relays, world):
    world.start_dns(simple_zone(one_test="127.0.0.2", two_test="127.0.0.3", three_test="127.0.0.4"))
    mxs = {d: world.scripted(a) for d, a in (("one", "127.0.0.2"), ("two", "127.0.0.3"), ("three", "127.0.0.4"))}
    relay = new_relay(relays, world, {"pause": "yes"})
    rcpts = ["a@one.test", "b@two.test", "c@one.test", "d@three.test"]
    qid = submit(relay, "x@sender.test", rcpts, SPECIAL)
    stored = relay.cat(qid)
    relay.ctl("delivery", "resume")
    wait_gone(relay, qid)
    want = {"one": ["a@one.test", "c@one.test"], "two": ["b@two.test"], "three": ["d@three.test"]}
    for d, mx in mxs.items():
        [t] = mx.delivered()
        assert sorted(t.accepted) == want[d], (d, t.accepted)
        assert t.content == stored
    assert len(results(relay, qid)) == 4


def test_helo_fallback_and_no_pipelining_without_the_extension(relays, world):
    """An MX that does not know EHLO (500): HELO, then one command per
    reply, no ESMTP parameter. Our EHLO/HELO name is [server] hostname."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2", extensions=())
    mx.ehlo_reply = lambda s, arg: b"500 5.5.1 what is EHLO?"
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test", "c@dest.test"], SPECIAL, " BODY=8BITMIME")
    wait_gone(relay, qid)
    [t] = mx.delivered()
    s = t.session
    assert s.lines[0] == b"EHLO relay.test\r\n" and s.lines[1] == b"HELO relay.test\r\n", s.lines[:2]
    assert t.mail_params == [], t.mail_line
    assert sorted(t.accepted) == ["b@dest.test", "c@dest.test"]
    no_violations(mx)


def test_no_pipelining_offered_means_one_command_per_reply(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2", extensions=("8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES"))
    mx.rcpt = lambda s, txn, addr, n: Delay(0.05, b"250 2.1.5 ok")
    relay = new_relay(relays, world)
    qids = [submit(relay, "a@sender.test", ["r%d@dest.test" % i, "s%d@dest.test" % i], SPECIAL) for i in range(3)]
    for q in qids:
        wait_gone(relay, q)
    assert len(mx.delivered()) == 3
    no_violations(mx)


def test_address_literal_recipient_goes_to_that_address(relays, world):
    world.start_dns({})
    mx = world.scripted("127.0.0.5")
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["x@[127.0.0.5]"], SPECIAL)
    wait_gone(relay, qid)
    assert len(mx.delivered_to("x@[127.0.0.5]")) == 1


def test_general_address_literal_is_refused_at_rcpt(relays, world):
    """RFC 5321 4.1.3's "[tag:content]" parses, but no tag besides IPv6
    is registered: 553 5.1.3 at RCPT, while the sender is still there,
    instead of a bounce later. The transaction goes on for the others."""
    world.start_dns({})
    mx = world.scripted("127.0.0.5")
    relay = new_relay(relays, world)
    with relay.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@sender.test>", 250)
        c.expect("RCPT TO:<x@[x-tag:127.0.0.5]>", 553, "5.1.3")
        c.expect("RCPT TO:<y@[127.0.0.5]>", 250)
        rep = c.data(SPECIAL)
        assert rep.code == 250, rep
        c.cmd("QUIT")
    wait_gone(relay, rep.qid)
    assert len(mx.delivered()) == 1
    assert len(mx.delivered_to("y@[127.0.0.5]")) == 1
    rejects = [e for e in events(relay, "smtp.reject") if e.get("command") == "RCPT"]
    assert [r.get("reply") for r in rejects] == ["553 5.1.3"], rejects


def test_ipv6_mx_host(relays, world):
    """An MX with only an AAAA record (::1 here, loopback allowed)."""
    world.start_dns({"v6.test": {"MX": [[10, "mx.v6.test"]]}, "mx.v6.test": {"AAAA": ["::1"]}})
    mx = world.scripted("::1")
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["x@v6.test"], SPECIAL)
    wait_gone(relay, qid)
    assert len(mx.delivered()) == 1
    [r] = results(relay, qid)
    assert r["relay"] == "mx.v6.test[::1]:%d" % world.port, r


# -- MX choice ---------------------------------------------------------------

def test_first_mx_refuses_connections_the_next_one_is_used(relays, world):
    world.start_dns({"dest.test": {"MX": [[10, "mx1.dest.test"], [20, "mx2.dest.test"]]},
                     "mx1.dest.test": {"A": ["127.0.0.2"]},   # nothing listens there
                     "mx2.dest.test": {"A": ["127.0.0.3"]}})
    mx2 = world.scripted("127.0.0.3")
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid)
    assert len(mx2.delivered_to("b@dest.test")) == 1
    [r] = results(relay, qid)
    assert r["result"] == "delivered" and r["relay"] == "mx2.dest.test[127.0.0.3]:%d" % world.port, r


def test_every_mx_refusing_connections_defers_without_bounce(relays, world):
    world.start_dns({"dest.test": {"MX": [[10, "mx1.dest.test"], [20, "mx2.dest.test"]]},
                     "mx1.dest.test": {"A": ["127.0.0.2"]},   # nothing listens on either
                     "mx2.dest.test": {"A": ["127.0.0.3"]},
                     "sender.test": {"MX": [[10, "mx.sender.test"]]}, "mx.sender.test": {"A": ["127.0.0.9"]}})
    home = world.scripted("127.0.0.9")
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 15, what="the attempt")
    [r] = results(relay, qid)
    assert r["result"] == "deferred" and r["dsn"].startswith("4."), r
    assert len(events(relay, "delivery.connect_failed")) >= 2, "not every MX was tried"
    time.sleep(0.5)
    assert home.n_sessions() == 0


def test_lower_preference_is_tried_first(relays, world):
    world.start_dns({"dest.test": {"MX": [[20, "mx2.dest.test"], [10, "mx1.dest.test"]]},
                     "mx1.dest.test": {"A": ["127.0.0.2"]},
                     "mx2.dest.test": {"A": ["127.0.0.3"]}})
    mx1 = world.scripted("127.0.0.2")
    mx2 = world.scripted("127.0.0.3")
    relay = new_relay(relays, world)
    qids = [submit(relay, "a@sender.test", ["b%d@dest.test" % i], SPECIAL) for i in range(3)]
    for q in qids:
        wait_gone(relay, q)
    assert len(mx1.delivered()) == 3 and mx2.n_sessions() == 0


def test_equal_preference_both_mx_hosts_are_used(relays, world):
    """RFC 5321 5.1: random order among equal preferences. Over many
    routings (a route lives DELIVERY_ROUTE_TTL_MS, so each message here is a
    new destination: a new domain each time) both hosts get mail."""
    zone = {"mxa.test": {"A": ["127.0.0.2"]}, "mxb.test": {"A": ["127.0.0.3"]}}
    n = 16
    for i in range(n):
        zone["d%d.test" % i] = {"MX": [[10, "mxa.test"], [10, "mxb.test"]]}
    world.start_dns(zone)
    a = world.scripted("127.0.0.2")
    b = world.scripted("127.0.0.3")
    relay = new_relay(relays, world, {"pause": "yes"})
    qids = [submit(relay, "a@sender.test", ["x@d%d.test" % i], SPECIAL) for i in range(n)]
    relay.ctl("delivery", "resume")
    for q in qids:
        wait_gone(relay, q)
    na, nb = len(a.delivered()), len(b.delivered())
    assert na + nb == n
    # Either order with probability 1/2 each: all 16 on one host has
    # probability 2^-15.
    assert na > 0 and nb > 0, (na, nb)


def test_mx_answering_421_at_greeting_next_mx_is_used(relays, world):
    world.start_dns({"dest.test": {"MX": [[10, "mx1.dest.test"], [20, "mx2.dest.test"]]},
                     "mx1.dest.test": {"A": ["127.0.0.2"]},
                     "mx2.dest.test": {"A": ["127.0.0.3"]}})
    mx1 = world.scripted("127.0.0.2")
    mx1.greeting = lambda s: b"421 4.3.2 mx1 busy, try another"
    mx2 = world.scripted("127.0.0.3")
    relay = new_relay(relays, world)
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid)
    assert mx1.n_sessions() >= 1 and mx1.all_txns() == []
    assert len(mx2.delivered_to("b@dest.test")) == 1


def test_tarpit_mx_times_out_while_other_domains_are_delivered(relays, world):
    """A tarpit (TCP accepted, no greeting) costs its own domain a reply
    timeout, nothing else: mail to another domain is delivered meanwhile."""
    world.start_dns(simple_zone(slow_test="127.0.0.2", fast_test="127.0.0.3"))
    tarpit = world.tarpit("127.0.0.2")
    fast = world.scripted("127.0.0.3")
    relay = new_relay(relays, world, {"reply_timeout": "3s", "retry": "1h"})
    q1 = submit(relay, "a@sender.test", ["x@slow.test"], SPECIAL)
    wait_until(lambda: tarpit.n_sessions() >= 1, 10, what="the tarpit to be connected")
    q2 = submit(relay, "a@sender.test", ["y@fast.test"], SPECIAL)
    wait_gone(relay, q2, timeout=10)
    [t] = fast.delivered()
    s = tarpit.sessions[0]
    assert s.t_close is None or t.t_dot < s.t_close, "the other domain waited for the tarpit to time out"
    # The tarpit: deferred after reply_timeout (3 s), not bounced.
    wait_until(lambda: results(relay, q1), 15, what="the tarpit attempt to end")
    [r] = results(relay, q1)
    assert r["result"] == "deferred" and r["dsn"].startswith("4."), r
    assert rcpt_states(relay, q1)["x@slow.test"]["state"] == "deferred"
    s = tarpit.sessions[0]
    waited = (s.t_close or time.monotonic()) - s.t_connect
    assert 2.0 <= waited <= 8.0, "tarpit connection lasted %.1fs with reply_timeout = 3s" % waited


# -- retries -------------------------------------------------------------------

def test_451_three_times_then_250_delivered_once_at_growing_intervals(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"451 4.3.0 try later" if n <= 3 else b"250 2.1.5 ok"
    relay = new_relay(relays, world, {"retry": "1s 2s 3s"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid, timeout=40)
    assert len(mx.delivered()) == 1
    times = [t.t_mail for t in mx.all_txns()]
    assert len(times) == 4, "expected 4 attempts, the MX saw %d transactions" % len(times)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # retry = 1s 2s 3s: the gaps are about 1, 2 and 3 seconds.
    for gap, want in zip(gaps, (1, 2, 3)):
        assert want - 0.3 <= gap <= want + 2.0, "retry gaps %r, expected about 1, 2, 3 s" % gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    rs = results(relay, qid)
    assert [r["result"] for r in rs] == ["deferred"] * 3 + ["delivered"], rs
    assert [r["attempt"] for r in rs] == ["1", "2", "3", "4"], rs


def test_250_450_550_in_one_transaction(relays, world):
    """One delivery, one retry (the 450 one, delivered later), one bounce
    naming only the 550 recipient."""
    world.start_dns(simple_zone(dest_test="127.0.0.2", sender_test="127.0.0.9"))
    replies = {"ok@dest.test": lambda n: b"250 2.1.5 ok",
               "later@dest.test": lambda n: b"450 4.2.1 mailbox busy" if n == 1 else b"250 2.1.5 ok now",
               "bad@dest.test": lambda n: b"550 5.1.1 no such user here"}
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: replies[addr](n)
    home = world.scripted("127.0.0.9")
    relay = new_relay(relays, world, {"retry": "2s"})
    qid = submit(relay, "alice@sender.test", list(replies), SPECIAL)
    wait_gone(relay, qid, timeout=30)
    first, *rest = mx.all_txns()
    assert [r[0] for r in first.rcpts] == ["ok@dest.test", "later@dest.test", "bad@dest.test"]
    assert first.delivered and first.accepted == ["ok@dest.test"]
    assert [t.accepted for t in mx.delivered()] == [["ok@dest.test"], ["later@dest.test"]]
    assert [r[0] for t in rest for r in t.rcpts] == ["later@dest.test"], "only the 450 recipient is retried"
    wait_until(lambda: home.delivered(), 20, what="the bounce at the sender's MX")
    time.sleep(0.5)
    [b] = home.delivered()
    assert b.mail_from == "" and b.accepted == ["alice@sender.test"]
    dsn = DSN(b.content)
    assert dsn.recipients() == ["bad@dest.test"], dsn.per_rcpt
    r = dsn.per_rcpt[0]
    assert r["action"] == "failed" and r["status"] == "5.1.1", r
    assert r["diagnostic-code"] == "smtp; 550 5.1.1 no such user here", r
    by = {r["to"]: [x["result"] for x in results(relay, qid, r["to"][1:-1])] for r in results(relay, qid)}
    assert by == {"<ok@dest.test>": ["delivered"], "<later@dest.test>": ["deferred", "delivered"],
                  "<bad@dest.test>": ["failed"]}, by


# -- what the MX may say -------------------------------------------------------

MALFORMED = {
    "mixed-codes": b"250-first line\r\n550-second line\r\n250 last line\r\n",
    "600-octet-line": b"250 " + b"x" * 600 + b"\r\n",
    "200-lines": b"".join(b"250-line %d\r\n" % i for i in range(199)) + b"250 end\r\n",
    "bare-lf": b"250 2.1.5 ok\n",
    "garbage": b"hello, this is not SMTP\r\n",
    "binary": bytes(range(256)) + b"\r\n",
    "1xx": b"150 2.1.5 intermediate?\r\n",
    "nul": b"250 2.1.5 o\x00k\r\n",
    "no-separator": b"250x\r\n",
    "bad-separator": b"250_ok\r\n",
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_reply_to_rcpt_defers_without_crash(relays, world, kind):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: MALFORMED[kind]
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 20, what="the attempt's result")
    [r] = results(relay, qid)
    assert r["result"] == "deferred" and r["dsn"].startswith("4."), r
    st = rcpt_states(relay, qid)["b@dest.test"]
    assert st["state"] == "deferred", st
    assert not mx.delivered()
    assert relay.running()
    # The log stays one event per line, in `area.event key=value` form: no
    # raw control octet of the reply in it.
    bad = unparsable_lines(relay)
    assert not bad, bad[:5]
    assert "\x00" not in relay.log() and "\x1b" not in relay.log()


@pytest.mark.parametrize("where", ["greeting", "ehlo", "mail", "data", "dot"])
def test_malformed_multiline_reply_at_each_step_defers(relays, world, where):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    bad = b"250-ok\r\n451-mixed\r\n250 done\r\n"
    if where == "greeting":
        mx.greeting = lambda s: b"220-hello\r\n554 no\r\n"
    elif where == "ehlo":
        mx.ehlo_reply = lambda s, arg: bad
    elif where == "mail":
        mx.mail = lambda s, t: bad
    elif where == "data":
        mx.data = lambda s, t: b"354-go\r\n250 ahead\r\n"
    else:
        mx.dot = lambda s, t: bad
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 20, what="the attempt's result")
    [r] = results(relay, qid)
    assert r["result"] == "deferred", r
    assert rcpt_states(relay, qid)["b@dest.test"]["state"] == "deferred"
    assert not unparsable_lines(relay)


def test_connection_dropped_after_the_final_dot_is_retried_never_lost(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    state = {"n": 0}

    def dot(s, txn):
        state["n"] += 1
        return CLOSE if state["n"] == 1 else b"250 2.0.0 got it this time"
    mx.dot = dot
    relay = new_relay(relays, world, {"retry": "1s"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_gone(relay, qid, timeout=30)
    txns = mx.all_txns()
    assert len(txns) == 2, [t.dot_reply for t in txns]
    assert txns[0].content == txns[1].content
    assert len(mx.delivered()) == 1
    rs = results(relay, qid)
    assert [r["result"] for r in rs] == ["deferred", "delivered"], rs
    assert rs[0]["dsn"].startswith("4."), rs[0]


def test_452_too_many_recipients_continues_in_new_transactions(relays, world):
    """An MX taking at most 2 RCPTs per transaction: 5 recipients in 3
    transactions on one connection."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: (b"452 4.5.3 too many recipients" if len(txn.accepted) >= 2
                                      else b"250 2.1.5 ok")
    relay = new_relay(relays, world, {"retry": "1h"})
    rcpts = ["r%d@dest.test" % i for i in range(5)]
    qid = submit(relay, "a@sender.test", rcpts, SPECIAL)
    wait_gone(relay, qid, timeout=20)
    d = mx.delivered()
    assert sorted(a for t in d for a in t.accepted) == rcpts
    assert len(d) == 3, [t.accepted for t in d]
    assert len({id(t.session) for t in d}) == 1, "the transactions used more than one connection"
    assert all(r["result"] == "delivered" for r in results(relay, qid))


# -- connection reuse and concurrency -------------------------------------------

def test_messages_one_after_another_reuse_the_connection(relays, world):
    """20 messages to one domain, submitted one after the other: few SMTP
    sessions at the sink (Postfix's smtp-sink counts them)."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    sink = world.sink("127.0.0.2")
    relay = new_relay(relays, world)
    qids = []
    for i in range(20):
        qids.append(submit(relay, "a@sender.test", ["b%d@dest.test" % i], SPECIAL))
        time.sleep(0.05)
    for q in qids:
        wait_gone(relay, q)
    # Idle connections QUIT after DELIVERY_IDLE_MS (2 s).
    wait_until(lambda: sink.counters()["mesg"] == 20, 10, what="20 messages at the sink")
    time.sleep(2.5)
    c = sink.counters()
    assert c["mesg"] == 20, c
    assert c["sess"] <= 5, "20 messages took %d SMTP sessions: connections are not reused" % c["sess"]


def test_a_burst_stays_within_the_destination_concurrency_and_reuses_connections(relays, world):
    """DELIVERY_DEST_CONCURRENCY (20) connections at most to one
    destination, however many messages are due; each carries several."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.dot = lambda s, t: Delay(0.3, b"250 2.0.0 ok")
    relay = new_relay(relays, world, {"pause": "yes"})
    n = 60
    with relay.client() as c:
        c.ehlo()
        for i in range(n):
            c.envelope("a@sender.test", ["r%d@dest.test" % i])
            assert c.data(b"Subject: burst %d\r\n\r\nbody\r\n" % i).code == 250
    relay.ctl("delivery", "resume")
    wait_until(lambda: len(mx.delivered()) == n, 60, what="%d deliveries" % n)
    assert mx.max_active <= 20, "%d connections at once to one destination" % mx.max_active
    assert mx.n_sessions() <= 20, "%d sessions for %d messages" % (mx.n_sessions(), n)
    no_violations(mx)


# -- the queue, by hand -------------------------------------------------------

def _deferred_for_an_hour(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"451 4.3.0 not yet" if n == 1 else b"250 2.1.5 ok"
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 15, what="the first attempt")
    time.sleep(0.5)
    assert qid in relay.queue_ids()
    assert rcpt_states(relay, qid)["b@dest.test"]["state"] == "deferred"
    return relay, mx, qid


def test_queue_flush_id_tries_a_deferred_message_at_once(relays, world):
    relay, mx, qid = _deferred_for_an_hour(relays, world)
    p = relay.ctl("queue", "flush", qid)
    assert p.returncode == 0, p.stderr
    wait_gone(relay, qid, timeout=10)
    assert len(mx.delivered()) == 1


def test_queue_flush_tries_every_deferred_message_at_once(relays, world):
    relay, mx, qid = _deferred_for_an_hour(relays, world)
    p = relay.ctl("queue", "flush")
    assert p.returncode == 0, "`detourctl queue flush` (no id) failed: %r" % (p.stderr,)
    wait_gone(relay, qid, timeout=10)
    assert len(mx.delivered()) == 1


def test_a_held_message_is_never_tried_until_released(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    relay = new_relay(relays, world, {"pause": "yes", "retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    assert relay.ctl("queue", "hold", qid).returncode == 0
    assert relay.show(qid)["held"] is True
    assert relay.ctl("delivery", "resume").returncode == 0
    assert relay.ctl("queue", "flush", qid).returncode == 0
    relay.ctl("queue", "flush")  # its own exit status is test_queue_flush_tries_every_...'s business
    time.sleep(2.5)
    assert mx.n_sessions() == 0 and qid in relay.queue_ids()
    assert results(relay, qid) == []
    assert relay.ctl("queue", "release", qid).returncode == 0
    wait_gone(relay, qid, timeout=15)
    assert len(mx.delivered()) == 1


def test_a_deferred_message_keeps_its_schedule_across_a_restart(relays, world):
    """No hot loop and no lost schedule: deferred for an hour, restarted, it
    is not tried again at once, and still deferred."""
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: b"451 4.3.0 later"
    relay = new_relay(relays, world, {"retry": "1h"})
    qid = submit(relay, "a@sender.test", ["b@dest.test"], SPECIAL)
    wait_until(lambda: results(relay, qid), 15, what="the first attempt")
    before = rcpt_states(relay, qid)["b@dest.test"]
    relay.restart()
    time.sleep(2.5)
    assert len(mx.all_txns()) == 1, "tried again right after the restart"
    after = rcpt_states(relay, qid)["b@dest.test"]
    assert after["state"] == "deferred" and after["next_attempt_ms"] == before["next_attempt_ms"], (before, after)
    assert after["next_attempt_ms"] - relay.show(qid)["arrival_ms"] >= 3500 * 1000


# -- logs ------------------------------------------------------------------------

def test_one_result_line_per_recipient_per_attempt_with_every_key(relays, world):
    world.start_dns(simple_zone(dest_test="127.0.0.2"))
    mx = world.scripted("127.0.0.2")
    mx.rcpt = lambda s, txn, addr, n: (b"451 4.2.0 wait" if addr.startswith("slow") and n == 1
                                      else b"250 2.1.5 fine")
    relay = new_relay(relays, world, {"retry": "1s"})
    qid = submit(relay, "a@sender.test", ["slow@dest.test", "quick@dest.test"], SPECIAL)
    wait_gone(relay, qid, timeout=20)
    rs = results(relay, qid)
    assert len(rs) == 3, rs
    for r in rs:
        for key in ("qid", "to", "relay", "tls", "delay_ms", "dsn", "result", "reply"):
            assert key in r, (key, r)
        assert r["relay"] == "mx.dest.test[127.0.0.2]:%d" % world.port, r
        assert r["tls"] == "none"
        assert int(r["delay_ms"]) >= 0
    slow = results(relay, qid, "slow@dest.test")
    assert [(r["result"], r["dsn"]) for r in slow] == [("deferred", "4.2.0"), ("delivered", "2.0.0")], slow
    assert "451" in slow[0]["reply"] and "wait" in slow[0]["reply"], slow[0]
    assert int(slow[1]["delay_ms"]) >= 900
    quick = results(relay, qid, "quick@dest.test")
    assert [r["result"] for r in quick] == ["delivered"]
    assert "250" in quick[0]["reply"], quick
