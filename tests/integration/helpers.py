"""Shared helpers for the detourd integration tests.

Everything here talks to the daemon the way an outside client would: a raw
socket speaking SMTP byte for byte (so that tests control every octet, bare
CRs and pipelined writes included), Python's smtplib, and swaks.
"""

import base64
import errno
import hashlib
import os
import random
import re
import select
import smtplib
import socket
import ssl
import subprocess
import time

# Queue ids: 16 characters of Crockford base32 (spool.h).
QID_RE = re.compile(rb"queued as ([0-9A-Z]{16})")

# Generous: the daemon runs under AddressSanitizer on a slow 2-core machine.
IO_TIMEOUT = 60.0


class ConnectionClosed(Exception):
    """The server closed the connection before a complete reply arrived."""

    def __init__(self, partial=b""):
        super().__init__("connection closed by the server (partial data: %r)" % (partial[:200],))
        self.partial = partial


class Reply:
    """One complete (possibly multi-line) SMTP reply."""

    def __init__(self, lines):
        self.lines = lines  # list of bytes, without CRLF
        last = lines[-1]
        self.code = int(last[:3])
        text = last[4:].decode("utf-8", "replace")
        m = re.match(r"^([245]\.\d{1,3}\.\d{1,3}) ", text + " ")
        self.enh = m.group(1) if m else ""
        self.text = text

    @property
    def texts(self):
        """The text part of every line (EHLO keywords)."""
        return [l[4:].decode("utf-8", "replace") for l in self.lines]

    @property
    def qid(self):
        m = QID_RE.search(self.lines[-1])
        return m.group(1).decode() if m else None

    def __repr__(self):
        return "<Reply %s>" % b" | ".join(self.lines).decode("utf-8", "replace")

    def is_(self, code, enh=None):
        return self.code == code and (enh is None or self.enh == enh)


class SMTPClient:
    """A raw SMTP client: every octet sent is exactly what the test wrote."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, read_banner=True, tls_context=None, source=None):
        """tls_context: implicit TLS (RFC 8314), the handshake before the
        banner. source: a local address to connect from (another loopback
        address, such as 127.0.0.2, is another client address to detourd)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.eof = False
        if tls_context is not None:
            self.sock = tls_context.wrap_socket(self.sock, server_hostname=host)
        self.banner = self.reply() if read_banner else None

    # -- TLS -------------------------------------------------------------
    def starttls(self, context=None):
        """STARTTLS (RFC 3207): expect 220, then do the handshake on this
        connection. Returns the 220 reply."""
        r = self.cmd("STARTTLS")
        assert r.is_(220, "2.0.0"), "STARTTLS: expected 220 2.0.0, got %r" % (r,)
        assert self.buf == b"", "bytes after the 220 to STARTTLS, before TLS: %r" % (self.buf,)
        self.sock = (context or tls_client_context()).wrap_socket(self.sock, server_hostname=self.host)
        return r

    @property
    def tls(self):
        return isinstance(self.sock, ssl.SSLSocket)

    def quiet(self, wait=1.0):
        """True if nothing at all arrives within `wait` seconds (works under
        TLS, where select() on the socket says nothing about decrypted data)."""
        if self.buf:
            return False
        try:
            self._fill(time.monotonic() + wait)
        except TimeoutError:
            return True
        except ConnectionClosed:
            return True
        return False

    # -- sending ---------------------------------------------------------
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line, timeout=None):
        """Send one command line (CRLF appended) and return its reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    # -- receiving -------------------------------------------------------
    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply within the timeout; have %r" % (self.buf[:300],))
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no complete reply within the timeout; have %r" % (self.buf[:300],))
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed(self.buf)
        self.buf += chunk

    def _line(self, deadline):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if self.eof:
                raise ConnectionClosed(self.buf)
            self._fill(deadline)

    def reply(self, timeout=None):
        """Read one complete reply; ConnectionClosed on EOF, TimeoutError."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        lines = []
        while True:
            line = self._line(deadline)
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in b"- "):
                raise AssertionError("malformed reply line from the server: %r" % (line,))
            lines.append(line)
            if line[3:4] != b"-":
                return Reply(lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def closed(self, timeout=10.0):
        """True if the server closes the connection within timeout (any data
        still arriving before the close is kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False
        return True

    def nothing_pending(self, wait=0.3):
        """True if no unread reply bytes arrive within `wait` seconds."""
        if self.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return True
        try:
            self.sock.setblocking(False)
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return True
        finally:
            self.sock.setblocking(True)
        self.buf += data
        if not data:
            self.eof = True
            return True
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- conveniences ------------------------------------------------------
    def ehlo(self, name="client.test"):
        r = self.cmd("EHLO " + name)
        assert r.code == 250, r
        return r

    def expect(self, line, code, enh=None):
        r = self.cmd(line)
        assert r.code == code and (enh is None or r.enh == enh), \
            "%r: expected %s %s, got %r" % (line, code, enh or "", r)
        return r

    def envelope(self, sender, rcpts, mail_params=""):
        self.expect("MAIL FROM:<%s>%s" % (sender, mail_params), 250, "2.1.0")
        for r in rcpts:
            self.expect("RCPT TO:<%s>" % r, 250, "2.1.5")

    def data(self, body):
        """DATA with our own dot-stuffing; body must end with CRLF. Returns
        the reply to the end of data."""
        r = self.cmd("DATA")
        assert r.code == 354, r
        self.send(dot_stuff(body) + b".\r\n")
        return self.reply()

    def bdat(self, chunks, pipelined=False):
        """Send chunks with BDAT, the last one with LAST. Returns replies."""
        out = b"".join(b"BDAT %d%s\r\n%s" % (len(c), b" LAST" if i == len(chunks) - 1 else b"", c)
                       for i, c in enumerate(chunks))
        if pipelined:
            self.send(out)
            return self.replies(len(chunks))
        replies = []
        for i, c in enumerate(chunks):
            self.send(b"BDAT %d%s\r\n%s" % (len(c), b" LAST" if i == len(chunks) - 1 else b"", c))
            replies.append(self.reply())
        return replies


def dot_stuff(body):
    """RFC 5321 4.5.2: double a leading dot on every line."""
    out = re.sub(rb"(?m)^\.", b"..", body)
    return out


# -- message bodies --------------------------------------------------------

_SPECIAL_LINES = [
    b".",                      # would end the data if not stuffed
    b"..",
    b". leading dot and space",
    b".starts with a dot",
    b"...three dots",
    b"caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac",  # UTF-8
    b"raw 8-bit \x80\x81\xfe\xff latin-1 \xe9\xe8",
    b"",                       # empty line
    b"   leading spaces and trailing spaces   ",
    b"\ttab at start",
    b"From the start of a line (mbox would mangle this)",
    b"=?utf-8?q?encoded?= and % and $ and @",
]


def _line_pool(rng, eightbit):
    pool = list(_SPECIAL_LINES if eightbit else [l for l in _SPECIAL_LINES if max(l or b"\0") < 0x80])
    alphabet = bytes(range(0x20, 0x7F))
    if eightbit:
        alphabet += bytes(range(0x80, 0x100))
    for n in (0, 1, 2, 40, 76, 77, 78, 200, 500, 997, 998):
        line = bytes(rng.choice(alphabet) for _ in range(n))
        if line.startswith(b"."):
            line = b"x" + line[1:]
        pool.append(line)
    for _ in range(200):
        n = rng.randint(0, 998)
        line = bytes(rng.choice(alphabet) for _ in range(n))
        if line.startswith(b"."):
            line = b"x" + line[1:]
        if rng.random() < 0.2:
            # 997 at most: the stuffed copy then has 998 octets on the wire,
            # whichever way a server counts (the limit test is elsewhere).
            line = b"." + line[:996]
        pool.append(line)
    return pool


def make_body(size, seed=1, eightbit=True, subject="test message"):
    """A message of exactly `size` octets with CRLF line endings, lines of at
    most 998 octets, lines starting with '.', and 8-bit octets unless
    eightbit is False. No bare CR, no bare LF, no NUL."""
    rng = random.Random(seed)
    header = (b"From: Sender <sender@example.org>\r\n"
              b"To: Rcpt <rcpt@example.net>\r\n"
              b"Subject: " + subject.encode() + b" " + str(seed).encode() + b"\r\n"
              b"Message-ID: <" + str(seed).encode() + b"." + str(size).encode() + b"@example.org>\r\n"
              b"MIME-Version: 1.0\r\n"
              b"Content-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: 8bit\r\n"
              b"\r\n")
    assert size >= len(header) + 2, "body too small for its headers"
    pool = _line_pool(rng, eightbit)
    parts = [header]
    total = len(header)
    # The special lines first, so that even a small message has them.
    for line in pool[:len(_SPECIAL_LINES)]:
        if size - total - (len(line) + 2) < 2:
            break
        parts.append(line + b"\r\n")
        total += len(line) + 2
    while size - total > 2000:
        line = rng.choice(pool)
        parts.append(line + b"\r\n")
        total += len(line) + 2
    rest = size - total
    filler = b"0123456789abcdefghijklmnopqrstuvwxyz" * 30
    if rest > 1000:
        first = rest // 2
        parts.append(b"." + filler[:first - 3] + b"\r\n")  # first <= 1000: 997 octets
        rest -= first
    parts.append(filler[:rest - 2] + b"\r\n")
    body = b"".join(parts)
    assert len(body) == size, (len(body), size)
    return body


def split_received(stored):
    """Split what `queue cat` printed into (our Received: header, the rest).
    The header is its first line plus the continuation lines that start with
    a tab."""
    assert stored.startswith(b"Received: from "), "stored message does not start with our Received: %r" % (stored[:100],)
    i = stored.index(b"\r\n") + 2
    while stored[i:i + 1] == b"\t":
        i = stored.index(b"\r\n", i) + 2
    return stored[:i], stored[i:]


def assert_stored_exactly(relay, qid, body, rcpt=None, protocol=None):
    """`queue cat QID` is our Received: header followed by exactly `body`."""
    stored = relay.cat(qid)
    received, rest = split_received(stored)
    assert b"(detour) with " in received and (b" id " + qid.encode()) in received, received
    if rcpt is not None:
        assert b"for <" + rcpt.encode() + b">" in received, received
    if protocol is not None:
        assert b" with " + protocol.encode() + b" id " in received, received
    if rest != body:
        # Say where they differ instead of printing megabytes.
        n = next((i for i, (a, b) in enumerate(zip(rest, body)) if a != b), min(len(rest), len(body)))
        raise AssertionError("stored body differs from the body sent: lengths %d (stored) vs %d (sent), "
                             "first difference at octet %d: stored %r, sent %r"
                             % (len(rest), len(body), n, rest[max(0, n - 20):n + 20], body[max(0, n - 20):n + 20]))
    return received


# -- smtplib -----------------------------------------------------------------

def smtplib_send(host, port, sender, rcpts, body, mail_options=(), rcpt_options=(), timeout=IO_TIMEOUT,
                 local_hostname="client.test"):
    """One transaction with smtplib; returns the queue id from the 250."""
    with smtplib.SMTP(host, port, local_hostname=local_hostname, timeout=timeout) as s:
        code, _ = s.ehlo()
        assert code == 250
        opts = list(mail_options)
        if s.has_extn("size"):
            opts.append("SIZE=%d" % len(body))
        code, resp = s.mail(sender, opts)
        assert code == 250, (code, resp)
        for r in rcpts:
            code, resp = s.rcpt(r, list(rcpt_options))
            assert code == 250, (code, resp)
        code, resp = s.data(body)
        assert code == 250, (code, resp)
        m = QID_RE.search(resp)
        assert m, resp
        return m.group(1).decode()


_bystander_seq = [0]


def bystander(relay, timeout=30.0):
    """Another client, served while a misbehaving one is connected: a full
    transaction that must complete within `timeout` seconds and be queued."""
    _bystander_seq[0] += 1
    n = _bystander_seq[0]
    sender = "bystander-%d-%d@example.org" % (os.getpid(), n)
    body = b"Subject: bystander %d\r\n\r\nI am only passing by.\r\n" % n
    t0 = time.monotonic()
    qid = smtplib_send("127.0.0.1", relay.port, sender, ["someone@example.net"], body, timeout=timeout)
    assert time.monotonic() - t0 < timeout, "the bystander was slowed down"
    return qid, sender, body


# -- ports -----------------------------------------------------------------

def free_port(v6=True):
    """A TCP port free on 127.0.0.1 and (if v6) on ::1 at the same time."""
    for _ in range(100):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        if not v6:
            s4.close()
            return port
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s6.bind(("::1", port))
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            continue
        finally:
            s4.close()
            s6.close()
        return port
    raise RuntimeError("no free port")


def wait_for(predicate, timeout=30.0, interval=0.05, what="condition"):
    """Poll until predicate() is true; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def swaks(*args, timeout=120):
    return subprocess.run(["swaks", *args], capture_output=True, timeout=timeout)


# -- TLS and AUTH ------------------------------------------------------------

def make_self_signed_cert(directory, name="cert", cn="localhost"):
    """A fresh self-signed certificate and key (RSA 2048) for localhost and
    127.0.0.1, written to DIRECTORY/NAME.pem and DIRECTORY/NAME.key.
    Returns (certificate path, key path)."""
    cert = os.path.join(directory, name + ".pem")
    key = os.path.join(directory, name + ".key")
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")
    return cert, key


def tls_section(cert, key):
    """The [tls] section of a detourd configuration."""
    return "[tls]\ncertificate = %s\nprivate_key = %s\n" % (cert, key)


def tls_client_context(cafile=None, minimum=None, maximum=None, ciphers=None):
    """A client context: verifying against cafile (host name included) when
    given, else accepting any certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        ctx.set_ciphers(ciphers)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def cert_fingerprint(pem_path):
    """SHA-256 of the DER form of the first certificate in a PEM file."""
    with open(pem_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def peer_fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain_blob(user, password, authzid=""):
    """The base64 response of SASL PLAIN (RFC 4616): authzid NUL authcid NUL
    password."""
    return b64(authzid.encode() + b"\0" + user.encode() + b"\0" + password.encode())
