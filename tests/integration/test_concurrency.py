"""Many clients at once: every message lands once, with its own envelope."""

import smtplib
import threading
import time

from helpers import QID_RE, assert_stored_exactly, wait_for

CLIENTS = 50
PER_CLIENT = 20


def _body(t, i):
    return (b"From: c%d@example.org\r\nSubject: message %d of client %d\r\n\r\n" % (t, i, t)
            + b".line with a dot from %d/%d\r\n" % (t, i) + b"x" * (100 + 37 * i) + b"\r\n")


def test_fifty_concurrent_clients_each_sending_twenty_messages_all_land(relays):
    relay = relays.new(limits={"max_connections_per_ip": "200", "max_connections": "1000"})
    results = {}
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(t):
        try:
            start.wait(60)
            s = None
            for i in range(PER_CLIENT):
                # Half the clients keep one connection, half reconnect for
                # every message.
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", relay.port, timeout=120)
                    s.ehlo("client%d.test" % t)
                sender, rcpt = "c%d-%d@example.org" % (t, i), "r%d-%d@example.net" % (t, i)
                code, resp = s.mail(sender)
                assert code == 250, resp
                code, resp = s.rcpt(rcpt)
                assert code == 250, resp
                code, resp = s.data(_body(t, i))
                assert code == 250, resp
                with lock:
                    results[QID_RE.search(resp).group(1).decode()] = (sender, rcpt, t, i)
                if t % 2:
                    s.quit()
                    s = None
            if s is not None:
                s.quit()
        except Exception as e:  # reported below, with the client number
            with lock:
                errors.append("client %d: %r" % (t, e))

    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(CLIENTS)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(300)
    assert not any(th.is_alive() for th in threads), "clients still running after 300s"
    assert not errors, errors[:5]
    assert len(results) == CLIENTS * PER_CLIENT, "duplicate queue ids in 250 replies"
    elapsed = time.monotonic() - t0

    queued = relay.queue()
    ids = [m["id"] for m in queued]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(results), "queued %d, acknowledged %d" % (len(ids), len(results))
    for m in queued:
        sender, rcpt, t, i = results[m["id"]]
        assert m["sender"] == sender
        assert [x["address"] for x in m["recipients"]] == [rcpt]
        assert m["client_address"] == "127.0.0.1" and m["listener"] == "plain"
    senders = [m["sender"] for m in queued]
    assert len(set(senders)) == CLIENTS * PER_CLIENT, "a message is queued twice"
    for qid in sorted(results)[::97]:
        sender, rcpt, t, i = results[qid]
        assert_stored_exactly(relay, qid, _body(t, i), rcpt=rcpt)
    p = relay.ctl("status")
    assert "messages_accepted: %d" % (CLIENTS * PER_CLIENT) in p.stdout, p.stdout
    assert "queue_messages: %d" % (CLIENTS * PER_CLIENT) in p.stdout, p.stdout
    print("%d messages from %d clients in %.1fs" % (len(results), CLIENTS, elapsed))


def test_max_connections_refuses_the_one_too_many_with_421(relays):
    relay = relays.new(limits={"max_connections": "3"})
    # The fixture's own "is the port open yet?" connection must be gone
    # from the daemon's count before the three slots are taken.
    def idle():
        p = relay.ctl("status")
        return p.returncode == 0 and "\nconnections: 0\n" in p.stdout
    wait_for(idle, timeout=30, interval=0.1, what="no open connection")
    conns = [relay.client() for _ in range(3)]
    try:
        for c in conns:
            assert c.banner.code == 220
        extra = relay.client(read_banner=False)
        r = extra.reply()
        assert r.is_(421, "4.7.0"), r
        assert extra.closed(10)
        extra.close()
        # The sessions already open are not disturbed.
        for c in conns:
            assert c.cmd("NOOP").is_(250)
        conns.pop().close()
        # Once one leaves, a new client gets in.
        def banner():
            c = relay.client(read_banner=False)
            r = c.reply()
            if r.code == 220:
                conns.append(c)
                return True
            c.close()
            return False
        wait_for(banner, timeout=30, interval=0.1, what="a free connection slot")
    finally:
        for c in conns:
            c.close()
