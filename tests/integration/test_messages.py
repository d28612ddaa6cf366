"""Messages land byte-exact: what `detourctl queue cat` prints is our
Received: header followed by exactly the octets the client meant to send,
whatever the client (smtplib, swaks, a raw socket with BDAT)."""

import os
import re
import smtplib

import pytest

from helpers import (QID_RE, SMTPClient, assert_stored_exactly, make_body, smtplib_send, split_received,
                     swaks)

KB = 1024
MB = 1024 * 1024


@pytest.mark.parametrize("size", [1 * KB, 1 * MB, 30 * MB], ids=["1KB", "1MB", "30MB"])
def test_smtplib_message_lands_byte_exact(relay, size):
    body = make_body(size, seed=size)
    assert re.search(rb"(?m)^\.", body), "the body must exercise dot-stuffing"
    assert any(c >= 0x80 for c in body[:4096]), "the body must carry 8-bit octets"
    qid = smtplib_send("127.0.0.1", relay.port, "sender@example.org", ["rcpt@example.net"], body,
                       mail_options=["BODY=8BITMIME"], timeout=300)
    msgs = relay.queue()
    assert [m["id"] for m in msgs] == [qid]
    m = msgs[0]
    assert m["sender"] == "sender@example.org"
    assert [r["address"] for r in m["recipients"]] == ["rcpt@example.net"]
    received = assert_stored_exactly(relay, qid, body, rcpt="rcpt@example.net", protocol="ESMTP")
    assert m["size"] == len(received) + len(body)
    assert relay.show(qid)["helo"] == "client.test"
    # BODY=8BITMIME is part of the envelope (queue show, human form).
    p = relay.ctl("queue", "show", qid)
    assert p.returncode == 0 and "body: 8BITMIME" in p.stdout, p.stdout


def test_received_header_names_client_helo_and_us(relay):
    body = make_body(1 * KB, seed=7)
    qid = smtplib_send("127.0.0.1", relay.port, "a@example.org", ["b@example.net"], body,
                       local_hostname="laptop.example")
    received, rest = split_received(relay.cat(qid))
    assert rest == body
    text = received.decode()
    assert text.startswith("Received: from laptop.example ([127.0.0.1])\r\n\tby relay.test (detour) with ESMTP id %s" % qid), text
    assert "for <b@example.net>;" in text
    # RFC 5322 date, and every line of the header ends with CRLF.
    assert re.search(r"\t\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n$", text), text
    assert all(line.endswith("\r") for line in text.split("\n")[:-1])


def test_received_header_omits_for_with_several_recipients(relay):
    body = make_body(1 * KB, seed=8)
    qid = smtplib_send("127.0.0.1", relay.port, "a@example.org", ["b@example.net", "c@example.net"], body)
    received, rest = split_received(relay.cat(qid))
    assert rest == body
    assert b"for <" not in received
    assert [r["address"] for r in relay.show(qid)["recipients"]] == ["b@example.net", "c@example.net"]


def test_helo_client_gets_plain_smtp_received(relay):
    body = make_body(2 * KB, seed=9, eightbit=False)
    with smtplib.SMTP("127.0.0.1", relay.port, local_hostname="old.example", timeout=60) as s:
        s.helo()
        s.mail("a@example.org")
        s.rcpt("b@example.net")
        code, resp = s.data(body)
    assert code == 250, resp
    qid = QID_RE.search(resp).group(1).decode()
    assert_stored_exactly(relay, qid, body, protocol="SMTP")


def test_raw_data_with_dot_lines_is_unstuffed(relay):
    """A line that is just '..' on the wire is '.' in the message; '...x' is
    '..x'. The end marker is only CRLF.CRLF."""
    body = b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n...y\r\n. \r\nlast\r\n"
    with relay.client() as c:
        c.ehlo()
        c.envelope("a@example.org", ["b@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(b"Subject: dots\r\n\r\n..\r\n...\r\n..x\r\n....y\r\n.. \r\nlast\r\n.\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
    assert_stored_exactly(relay, r.qid, body)


def test_empty_body_is_stored_empty(relay):
    with relay.client() as c:
        c.ehlo()
        c.envelope("a@example.org", ["b@example.net"])
        assert c.cmd("DATA").code == 354
        c.send(b".\r\n")
        r = c.reply()
        assert r.is_(250, "2.0.0"), r
    assert_stored_exactly(relay, r.qid, b"")


# -- BDAT (RFC 3030) ----------------------------------------------------------

def _chunks_split_crlf(body):
    """Chunks whose boundaries fall between CR and LF, right after CRLF,
    before a '.', and inside 8-bit text."""
    cuts = []
    i = body.find(b"\r\n")
    if i >= 0:
        cuts.append(i + 1)           # between CR and LF
    j = body.find(b"\r\n.")
    if j >= 0:
        cuts.append(j + 2)           # right before a leading dot
        cuts.append(j + 3)           # right after it
    k = body.find(b"\r\n", len(body) // 2)
    cuts.append(k + 1)               # CR | LF again, in the middle
    cuts.append(len(body) - 1)       # CR | LF of the last line
    cuts = sorted(set(c for c in cuts if 0 < c < len(body)))
    out, prev = [], 0
    for c in cuts:
        out.append(body[prev:c])
        prev = c
    out.append(body[prev:])
    return out


@pytest.mark.parametrize("pipelined", [False, True], ids=["lockstep", "pipelined"])
def test_bdat_chunks_split_between_cr_and_lf_land_byte_exact(relay, pipelined):
    body = make_body(40 * KB, seed=11)
    chunks = _chunks_split_crlf(body)
    assert any(c.endswith(b"\r") for c in chunks) and len(chunks) >= 4
    with relay.client() as c:
        ehlo = c.ehlo()
        assert "CHUNKING" in ehlo.texts
        c.envelope("bdat@example.org", ["b@example.net"], " BODY=8BITMIME")
        replies = c.bdat(chunks, pipelined=pipelined)
    for r in replies[:-1]:
        assert r.is_(250), replies
    last = replies[-1]
    assert last.is_(250, "2.0.0") and last.qid, last
    # BDAT data is not dot-stuffed: lines starting with '.' are stored as sent.
    assert_stored_exactly(relay, last.qid, body)


def test_bdat_zero_last_ends_the_message(relay):
    body = make_body(3 * KB, seed=12)
    with relay.client() as c:
        c.ehlo()
        c.envelope("bdat0@example.org", ["b@example.net"])
        c.send(b"BDAT %d\r\n" % 1000 + body[:1000])
        r1 = c.reply()
        assert r1.is_(250), r1
        c.send(b"BDAT %d\r\n" % (len(body) - 1000) + body[1000:])
        r2 = c.reply()
        assert r2.is_(250), r2
        # A zero-length last chunk carries no octets, so nothing but the
        # command itself can trigger the reply (bounded wait: a hang here
        # is the failure).
        r3 = c.cmd("BDAT 0 LAST", timeout=20)
        assert r3.is_(250, "2.0.0") and r3.qid, r3
    assert_stored_exactly(relay, r3.qid, body)


def test_bdat_one_megabyte_in_many_chunks(relay):
    body = make_body(1 * MB, seed=13)
    chunks = [body[i:i + 65000] for i in range(0, len(body), 65000)]
    with relay.client() as c:
        c.ehlo()
        c.envelope("bdatbig@example.org", ["b@example.net"])
        replies = c.bdat(chunks, pipelined=True)
    assert all(r.code == 250 for r in replies), replies
    assert_stored_exactly(relay, replies[-1].qid, body)


def test_two_messages_pipelined_with_bdat_in_one_write(relay):
    b1 = b"Subject: one\r\n\r\nfirst\r\n"
    b2 = b"Subject: two\r\n\r\n.second, with a dot\r\n"
    with relay.client() as c:
        c.ehlo()
        c.send(b"MAIL FROM:<p1@example.org>\r\nRCPT TO:<x@example.net>\r\nBDAT %d LAST\r\n%s"
               b"MAIL FROM:<p2@example.org>\r\nRCPT TO:<y@example.net>\r\nBDAT %d LAST\r\n%s"
               % (len(b1), b1, len(b2), b2))
        rs = c.replies(6)
    assert [(r.code, r.enh) for r in rs] == [(250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"),
                                            (250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0")], rs
    assert_stored_exactly(relay, rs[2].qid, b1)
    assert_stored_exactly(relay, rs[5].qid, b2)
    assert relay.show(rs[5].qid)["sender"] == "p2@example.org"


def test_bdat_then_data_in_one_transaction_is_refused(relay):
    with relay.client() as c:
        c.ehlo()
        c.envelope("mix@example.org", ["b@example.net"])
        c.send(b"BDAT 7\r\nhello\r\n")
        assert c.reply().is_(250)
        r = c.cmd("DATA")
        assert r.is_(503, "5.5.1"), r
    assert relay.by_sender("mix@example.org") == []


# -- swaks ---------------------------------------------------------------------

@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipelining"])
def test_swaks_message_lands_byte_exact(relay, tmp_path, pipeline):
    # swaks expands %TOKENS% and backslash escapes in --data, so the body
    # has neither; it sends the file followed by CRLF.CRLF, so the file is
    # the body without its last CRLF.
    body = make_body(64 * KB, seed=21 + pipeline).replace(b"%", b"#").replace(b"\\", b"/")
    f = tmp_path / "body.eml"
    f.write_bytes(body[:-2])
    args = ["--server", "127.0.0.1:%d" % relay.port, "--from", "swaks@example.org", "--to", "r@example.net",
            "--helo", "swaks.test", "--data", "@%s" % f, "--timeout", "120"]
    if pipeline:
        args.append("--pipeline")
    p = swaks(*args)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out.decode("utf-8", "replace")[-3000:]
    m = QID_RE.search(out)
    assert m, out[-2000:]
    qid = m.group(1).decode()
    assert_stored_exactly(relay, qid, body, rcpt="r@example.net")
    assert relay.show(qid)["sender"] == "swaks@example.org"
