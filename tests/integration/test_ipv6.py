"""IPv6: a message over [::1] is accepted and recorded with its address."""

from helpers import assert_stored_exactly, make_body, smtplib_send


def test_message_over_ipv6_is_queued_with_client_address(relay):
    body = make_body(4096, seed=61)
    qid = smtplib_send("::1", relay.port, "six@example.org", ["r@example.net"], body)
    m = relay.show(qid)
    assert m["client_address"] == "::1"
    assert [x["client_address"] for x in relay.queue()] == ["::1"]
    received = assert_stored_exactly(relay, qid, body)
    assert b"([IPv6:::1])" in received, received
    relay.wait_log("client=::1")


def test_raw_session_over_ipv6(relay):
    with relay.client(host="::1") as c:
        assert c.banner.is_(220)
        c.ehlo("[IPv6:::1]")
        c.envelope("raw6@example.org", ["r@example.net"])
        r = c.data(b"Subject: six\r\n\r\nover ::1\r\n")
        assert r.is_(250, "2.0.0"), r
    received = relay.cat(r.qid)
    assert received.startswith(b"Received: from [IPv6:::1] ([IPv6:::1])"), received[:120]
