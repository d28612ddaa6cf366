"""SMTP smuggling (issue 6): every bare-CR, bare-LF and NUL variant of the
end-of-data sequence.

The end of message data is <CRLF>.<CRLF> and nothing else. Each of its three
parts -- the CRLF before the dot, the dot, the CRLF after it -- is replaced
by a bare LF, a bare CR, a NUL, or nothing, in every combination (124
variants), and followed by a smuggled transaction

    MAIL FROM:<evil@x> / RCPT TO:<v@y> / DATA / smuggled / .

whose own final dot is the real end. The relay trusts loopback, so a
smuggled MAIL would be accepted if it were ever read as a command. For each
variant:
- a message from evil@x is never queued, and no extra reply is ever sent
  (the client gets exactly one reply for the whole data);
- a variant with a bare CR, a bare LF or a NUL is refused with 554 5.6.0;
- a variant that is legal SMTP (only parts dropped, or bare CR and LF that
  happen to form a CRLF) is queued as ONE message, from the real sender,
  whose text holds the smuggled lines as data (dot-unstuffed per RFC 5321
  4.5.2), exactly as a reference reading of the octets says.
Then delivery runs: the MX (aiosmtpd, DNS on loopback) receives exactly those
messages, each as one message, and nothing from evil@x or to v@y -- also for
a BDAT message whose chunk carries CRLF.CRLF and the smuggled commands
(legal in BDAT, and must be dot-stuffed on the way out).
"""

import itertools
import re

import pytest

import mailworld
from abuse_common import assert_queue, bystander, events, new_relay, timed_client
from helpers import split_received

SMUGGLED = b"MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\n"
HEAD = b"Subject: smuggling test\r\n\r\nfirst line"

EOL_SUBS = [("crlf", b"\r\n"), ("lf", b"\n"), ("cr", b"\r"), ("nul", b"\0"), ("none", b"")]
DOT_SUBS = [("dot", b"."), ("lf", b"\n"), ("cr", b"\r"), ("nul", b"\0"), ("none", b"")]


def variants_for(first, last):
    out = []
    for dname, dot in DOT_SUBS:
        if (first[0], dname, last[0]) == ("crlf", "dot", "crlf"):
            continue   # the real end, not a variant
        out.append(("%s-%s-%s" % (first[0], dname, last[0]), first[1] + dot + last[1]))
    return out


def reference(data):
    """What RFC 5321 makes of the octets after 354: (message text, rest) with
    the text dot-unstuffed, or None for text with a bare CR, bare LF or NUL
    (which must be refused)."""
    framed = b"\r\n" + data
    i = framed.find(b"\r\n.\r\n")
    assert i >= 0
    text, rest = framed[2:i + 2], framed[i + 5:]
    bare = text.replace(b"\r\n", b"")
    if b"\r" in bare or b"\n" in bare or b"\0" in text:
        return None, rest
    lines = text.split(b"\r\n")
    lines = [l[1:] if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(lines), rest


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = mailworld.MXWorld(tmp_path_factory.mktemp("smuggling-world"))
    try:
        zone = mailworld.simple_zone(example_net="127.0.0.2")
        for d in ("x", "y"):
            zone[d] = {"MX": [[10, "mx.example.net"]]}
        w.start_dns(zone)
        w.mx = w.aio("127.0.0.2")
        yield w
    finally:
        errors = w.close()
        if errors:
            pytest.fail("stopping the MX world: %s" % "; ".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def relay(module_relays, world):
    # Trusted loopback; delivery paused until the last test of the module.
    r = new_relay(module_relays, name="smuggling", delivery=mailworld.delivery_config(world, pause="yes"))
    r.legal = {}   # qid -> expected message text
    return r


PAIRS = list(itertools.product(EOL_SUBS, EOL_SUBS))


@pytest.mark.parametrize("first,last", PAIRS, ids=["%s..%s" % (a[0], b[0]) for a, b in PAIRS])
def test_end_of_data_variants(relay, first, last):
    failures = []
    for name, variant in variants_for(first, last):
        sender = "outer-%s@example.org" % name
        data = HEAD + variant + SMUGGLED
        want, rest = reference(data)
        assert rest == b"", "test bug: %s ends early" % name
        with relay.client() as c:
            c.ehlo()
            c.envelope(sender, ["dest@example.net"])
            assert c.cmd("DATA").code == 354
            c.send(data)
            r = c.reply()
            # Exactly one reply for everything sent, and still in step.
            extra = None if c.nothing_pending(0.05) else c.buf
            n = c.cmd("NOOP")
        if want is None:
            if not r.is_(554, "5.6.0"):
                failures.append("%s: expected 554 5.6.0, got %r" % (name, r))
        elif not r.is_(250, "2.0.0"):
            failures.append("%s (legal): expected 250 2.0.0, got %r" % (name, r))
        else:
            relay.expected.add(r.qid)
            relay.legal[r.qid] = want
            stored = split_received(relay.cat(r.qid))[1]
            if stored != want:
                failures.append("%s: stored %r, expected %r" % (name, stored, want))
        if extra is not None:
            failures.append("%s: more replies after the data: %r" % (name, extra))
        if not n.is_(250, "2.0.0"):
            failures.append("%s: NOOP after the data got %r" % (name, n))
    bystander(relay)
    assert not failures, "\n".join(failures)
    # Exactly the bystander and the legal variants: nothing from evil@x.
    assert_queue(relay)


def test_smuggled_commands_inside_bdat_are_data(relay):
    """In BDAT, CRLF.CRLF is just octets: the chunk, smuggled commands and
    all, is one message; its delivery (below) must dot-stuff it."""
    chunk = b"Subject: bdat smuggling\r\n\r\nbody\r\n.\r\n" + SMUGGLED + b"after\r\n"
    with relay.client() as c:
        c.ehlo()
        c.envelope("outer-bdat@example.org", ["dest@example.net"])
        (r,) = c.bdat([chunk])
        assert r.is_(250, "2.0.0"), r
        assert c.nothing_pending(0.05), c.buf
        timed_client(relay).close()
        c.expect("NOOP", 250)
    relay.expected.add(r.qid)
    relay.legal[r.qid] = chunk
    assert split_received(relay.cat(r.qid))[1] == chunk
    assert relay.by_sender("evil@x") == []
    assert_queue(relay)


def test_delivery_carries_each_message_as_one(relay, world):
    """Resume delivery: the MX receives exactly the queued messages, each as
    one message with its own sender, the smuggled lines as text; never a
    message from evil@x or to v@y."""
    assert relay.legal, "no legal variant was queued"
    want = set(relay.expected)
    assert relay.ctl("delivery", "resume").returncode == 0
    try:
        mailworld.wait_until(lambda: not relay.queue_ids(), 60, what="the queue to empty")
    finally:
        relay.ctl("delivery", "pause")
    relay.expected.clear()
    got = world.mx.envelopes
    assert len(got) == len(want), "%d messages queued, %d arrived: %r" % (
        len(want), len(got), [(e["mail_from"], e["rcpt_tos"]) for e in got])
    seen = set()
    for e in got:
        assert e["mail_from"] != "evil@x" and "v@y" not in e["rcpt_tos"], e
        received, text = split_received(e["content"])
        m = re.search(rb" id ([0-9A-Z]{16})", received)
        assert m, received
        qid = m.group(1).decode()
        seen.add(qid)
        if qid in relay.legal:
            assert e["rcpt_tos"] == ["dest@example.net"], e
            assert text == relay.legal[qid], "%s arrived as %r, queued as %r" % (qid, text, relay.legal[qid])
        else:
            assert e["rcpt_tos"] == ["someone@example.net"] and text.startswith(b"Subject: bystander "), e
    assert seen == want
    assert not [kv for kv in events(relay, "smtp.message") if kv.get("from") == "<evil@x>"]
    assert not [kv for kv in events(relay, "delivery.result") if kv.get("to") == "<v@y>"]
