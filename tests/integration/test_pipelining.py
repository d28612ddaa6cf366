"""PIPELINING (RFC 2920): commands sent in one write get their replies in
order, one reply per command, and the transaction they form is the one
queued."""

import threading

from helpers import assert_stored_exactly, make_body


def codes(replies):
    return [(r.code, r.enh) for r in replies]


def test_envelope_and_data_in_one_write(relay):
    body = make_body(5 * 1024, seed=31)
    with relay.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<pipe@example.org> BODY=8BITMIME\r\n"
               b"RCPT TO:<one@example.net>\r\n"
               b"RCPT TO:<two@example.net>\r\n"
               b"DATA\r\n")
        rs = c.replies(4)
        assert codes(rs) == [(250, "2.1.0"), (250, "2.1.5"), (250, "2.1.5"), (354, "")], rs
        c.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0") and r.qid, r
        assert c.cmd("QUIT").is_(221, "2.0.0")
    m = relay.show(r.qid)
    assert m["sender"] == "pipe@example.org"
    assert [x["address"] for x in m["recipients"]] == ["one@example.net", "two@example.net"]
    assert_stored_exactly(relay, r.qid, body)


def test_a_refused_recipient_in_a_pipeline_gets_its_own_reply_in_place(relay):
    with relay.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<pipe2@example.org>\r\n"
               b"RCPT TO:<good1@example.net>\r\n"
               b"RCPT TO:<bad address@example.net>\r\n"
               b"RCPT TO:<good2@example.net>\r\n"
               b"DATA\r\n")
        rs = c.replies(5)
        assert codes(rs) == [(250, "2.1.0"), (250, "2.1.5"), (501, "5.1.3"), (250, "2.1.5"), (354, "")], rs
        c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
    assert [x["address"] for x in relay.show(r.qid)["recipients"]] == ["good1@example.net", "good2@example.net"]


def test_noops_pipelined_get_one_reply_each_in_order(relay):
    with relay.client() as c:
        c.ehlo()
        c.send(b"NOOP\r\n" * 50)
        rs = c.replies(50)
        assert all(r.is_(250, "2.0.0") for r in rs), rs
        assert c.nothing_pending(0.5), "more replies than commands: %r" % c.buf


def test_mixed_commands_pipelined_keep_their_order(relay):
    with relay.client() as c:
        c.ehlo()
        c.send(b"NOOP\r\nVRFY someone\r\nHELP\r\nNOOP ignored text\r\nEXPN list\r\nNOOP\r\n")
        rs = c.replies(6)
        assert [r.code for r in rs] == [250, 252, 214, 250, 502, 250], rs
        assert c.nothing_pending(0.5)


def test_rset_pipelined_resets_between_transactions(relay):
    with relay.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<r1@example.org>\r\n"
               b"RSET\r\n"
               b"MAIL FROM:<r2@example.org>\r\n"
               b"RCPT TO:<x@example.net>\r\n"
               b"RSET\r\n"
               b"RCPT TO:<y@example.net>\r\n"
               b"NOOP\r\n")
        rs = c.replies(7)
        assert codes(rs) == [(250, "2.1.0"), (250, "2.0.0"), (250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"),
                             (503, "5.5.1"), (250, "2.0.0")], rs
    assert relay.queue() == []


def test_thousands_of_pipelined_commands_are_all_answered_in_order(relay):
    """A client that writes far more than the server's output buffer before
    reading anything still gets every reply, in order (back-pressure, not
    loss). Bounded: 6000 commands."""
    n = 6000
    payload = b"NOOP\r\nVRFY x\r\n" * (n // 2)
    with relay.client() as c:
        c.ehlo()
        t = threading.Thread(target=c.send, args=(payload,))
        t.start()
        rs = c.replies(n, timeout=120)
        t.join(60)
        assert not t.is_alive()
        assert [r.code for r in rs] == [250, 252] * (n // 2)
        assert c.cmd("QUIT").is_(221)
