"""The outside world of a delivering detourd, on loopback only.

- DNSServer: tests/tools/dnsserver.py with a JSON zone (started and stopped
  by its PID), so detourd never asks the system's resolver.
- ScriptedMX: a raw SMTP server written for these tests, on one 127.0.0.x
  address: every reply is scripted per command, per recipient and per
  attempt, and can be anything at all (malformed, binary, never sent, the
  connection closed instead); it records every session, command line and
  the exact DATA octets on the wire, and checks that what it reads is
  CRLF-only and dot-stuffed.
- AioMX: Python's aiosmtpd (a real, independent SMTP server) in a thread,
  with scripted RCPT replies, recording every envelope and the DATA bytes
  it received (after its own dot-unstuffing).
- SmtpSink: Postfix's smtp-sink as a subprocess, with its session and
  message counters.

detourd's [delivery] mx_port is one port for every MX, so every server of
a test listens on the same port, each on its own 127.0.0.x address
(MXWorld picks a port free on all of them).
"""

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DNSSERVER = os.path.join(TOP, "tests", "tools", "dnsserver.py")
PYTHON = "/usr/bin/python3"


def wait_until(pred, timeout=30.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------
# DNS

class DNSServer:
    """tests/tools/dnsserver.py on 127.0.0.1 with the given zone (a dict)."""

    def __init__(self, workdir, zone):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.zone_path = os.path.join(workdir, "zone.json")
        self.query_log = os.path.join(workdir, "queries.log")
        self.err_path = os.path.join(workdir, "dnsserver.err")
        self._write(zone)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([PYTHON, DNSSERVER, "--port", "0", "--zone", self.zone_path,
                                      "--query-log", self.query_log],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        line = self._readline(20.0)
        m = re.match(rb"ready (\d+)", line or b"")
        if not m:
            self.stop()
            raise AssertionError("dnsserver.py did not start: %r %s" % (line, self._errtext()))
        self.port = int(m.group(1))
        self.resolver = "127.0.0.1:%d" % self.port

    def _readline(self, timeout):
        out = []

        def rd():
            out.append(self.proc.stdout.readline())
        t = threading.Thread(target=rd, daemon=True)
        t.start()
        t.join(timeout)
        return out[0] if out else None

    def _errtext(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _write(self, zone):
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(zone, f)
        os.rename(tmp, self.zone_path)

    def set_zone(self, zone):
        """Replace the zone (SIGHUP); detourd may still have the old
        answers cached for their TTL."""
        self._write(zone)
        os.kill(self.proc.pid, signal.SIGHUP)
        time.sleep(0.5)  # the server reloads within its 0.2 s poll

    def queries(self):
        try:
            with open(self.query_log) as f:
                return [l.split() for l in f.read().splitlines() if l.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.err.close()
        self.proc = None


# ---------------------------------------------------------------------------
# A scripted SMTP server

class Close:
    """Close the connection instead of replying."""

    def __repr__(self):
        return "Close()"


class Hang:
    """Never reply; keep the connection open (until the peer closes it or
    the server stops)."""

    def __repr__(self):
        return "Hang()"


class Delay:
    """Wait `secs` (interruptible by stop), then do `then`."""

    def __init__(self, secs, then):
        self.secs = secs
        self.then = then


CLOSE = Close()
HANG = Hang()


def reply_bytes(r):
    if isinstance(r, str):
        r = r.encode()
    if isinstance(r, bytes) and not r.endswith(b"\n"):
        r += b"\r\n"
    return r


def final_reply(r):
    """The octets a scripted reply ends up sending, or the action."""
    while isinstance(r, Delay):
        r = r.then
    return reply_bytes(r) if isinstance(r, (bytes, str)) else r


class Txn:
    """One mail transaction as the server saw it."""

    def __init__(self, session, mail_line):
        self.session = session
        self.mail_line = mail_line          # bytes, without CRLF
        self.mail_from, self.mail_params = parse_path(mail_line, b"MAIL FROM:")
        self.rcpts = []                     # (address str, params, reply bytes)
        self.accepted = []                  # addresses given 2xx
        self.data_wire = None               # octets between 354 and the final ".\r\n" (included)
        self.content = None                 # unstuffed
        self.dot_reply = None               # bytes, or repr of the action
        self.t_mail = time.monotonic()
        self.t_dot = None

    @property
    def delivered(self):
        return isinstance(self.dot_reply, bytes) and self.dot_reply[:1] == b"2" and bool(self.accepted)


def parse_path(line, verb):
    """('addr', [params...]) from 'MAIL FROM:<addr> P=V ...'."""
    rest = line[len(verb):]
    m = re.match(rb"\s*<([^>]*)>(.*)$", rest)
    if not m:
        return None, []
    return m.group(1).decode("utf-8", "replace"), m.group(2).split()


class Session:
    def __init__(self, server, sock, peer):
        self.server = server
        self.sock = sock
        self.peer = peer
        self.t_connect = time.monotonic()
        self.t_close = None
        self.lines = []          # every command line received (bytes, with line end)
        self.txns = []
        self.tls = None          # cipher tuple after STARTTLS
        self.ehlo = None
        self.closed = False
        self.buf = b""
        self.index = None        # order of arrival at this server
        self.last_reply = None   # the last reply sent

    # -- I/O ---------------------------------------------------------------
    def _recv(self):
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, OSError, ssl.SSLError):
            chunk = b""
        if not chunk:
            raise EOFError()
        self.buf += chunk

    def readline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                return line
            if len(self.buf) > 4 * 1024 * 1024:
                raise EOFError()
            self._recv()

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise EOFError()

    def wait(self, secs):
        """Sleep up to secs; False if the server is stopping."""
        return not self.server.stopping.wait(secs)

    def act(self, r):
        """Carry out a scripted reply. Returns False when the session ends."""
        while isinstance(r, Delay):
            if not self.wait(r.secs):
                return False
            r = r.then
        if r is None or isinstance(r, Close):
            return False
        if isinstance(r, Hang):
            # Read (and drop) whatever comes until the peer closes.
            try:
                while not self.server.stopping.is_set():
                    self.buf = b""
                    self._recv()
            except EOFError:
                pass
            return False
        if callable(r):
            return r(self)
        self.last_reply = reply_bytes(r)
        self.send(self.last_reply)
        return True


class ScriptedMX:
    """A raw SMTP server on (addr, port) in threads. Every hook below can be
    replaced by an attribute of the same name (a function); each returns a
    reply: bytes/str (sent as is, CRLF appended when it has no line end),
    CLOSE, HANG, Delay(secs, reply), or a callable(session) -> bool."""

    def __init__(self, addr, port, name=None, hostname="mx.test",
                 extensions=("PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"),
                 tls_context=None, tls_broken=False):
        # tls_broken: False; "after-hello" (or True): the handshake fails
        # after the client's hello; "before-hello": junk right after 220.
        self.addr = addr
        self.port = port
        self.name = name or addr
        self.hostname = hostname
        self.extensions = list(extensions)
        self.tls_context = tls_context
        self.tls_broken = tls_broken
        self.lock = threading.Lock()
        self.sessions = []
        self.violations = []
        self.rcpt_attempts = {}      # address -> RCPT commands seen
        self.tls_hellos = []         # what came after STARTTLS when tls_broken
        self.active = 0
        self.max_active = 0
        self.stopping = threading.Event()
        self.threads = []
        self.lsock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ":" in addr:
            self.lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.lsock.bind((addr, port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self.acceptor.start()

    # -- hooks (override by assigning attributes) --------------------------
    def greeting(self, s):
        return b"220 %s ESMTP scripted\r\n" % self.hostname.encode()

    def ehlo_reply(self, s, arg):
        ext = list(self.extensions)
        if self.tls_context is not None and s.tls is None:
            ext.append("STARTTLS")
        lines = [self.hostname] + ext
        return b"".join(b"250%s%s\r\n" % (b" " if i == len(lines) - 1 else b"-", l.encode())
                        for i, l in enumerate(lines))

    def mail(self, s, txn):
        return b"250 2.1.0 sender ok"

    def rcpt(self, s, txn, addr, attempt):
        return b"250 2.1.5 recipient ok"

    def data(self, s, txn):
        if not txn.accepted:
            return b"554 5.5.1 no valid recipients"
        return b"354 go ahead"

    def dot(self, s, txn):
        return b"250 2.0.0 accepted"

    # -- machinery -----------------------------------------------------------
    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                sock, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(60)
            s = Session(self, sock, peer)
            with self.lock:
                s.index = len(self.sessions)
                self.sessions.append(s)
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _violation(self, s, what):
        with self.lock:
            self.violations.append("session %d: %s" % (s.index, what))

    def _serve(self, s):
        try:
            self._dialogue(s)
        except EOFError:
            pass
        except Exception as e:  # a bug here must not pass silently
            self._violation(s, "server error: %r" % (e,))
        finally:
            try:
                s.sock.close()
            except OSError:
                pass
            s.t_close = time.monotonic()
            s.closed = True
            with self.lock:
                self.active -= 1

    def _dialogue(self, s):
        if not s.act(self.greeting(s)):
            return
        txn = None
        while not self.stopping.is_set():
            line = s.readline()
            s.lines.append(line)
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                self._violation(s, "command line without CRLF or with a bare CR: %r" % line[:100])
            if len(line) > 512:
                self._violation(s, "command line longer than 512 octets: %d" % len(line))
            cmd = line.rstrip(b"\r\n")
            verb = cmd.split(b" ", 1)[0].split(b":", 1)[0].upper()
            if s.buf and not any(e.upper() == "PIPELINING" for e in self.extensions):
                # RFC 5321 / RFC 2920: without PIPELINING a client waits for
                # each reply before it sends the next command.
                self._violation(s, "commands pipelined to a server without PIPELINING: %r after %r"
                                % (s.buf[:60], cmd[:60]))
            if verb in (b"EHLO", b"HELO"):
                s.ehlo = cmd
                txn = None
                r = self.ehlo_reply(s, cmd[5:]) if verb == b"EHLO" else b"250 %s" % self.hostname.encode()
                if not s.act(r):
                    return
            elif verb == b"STARTTLS":
                if self.tls_context is None or s.tls is not None:
                    s.act(b"502 5.5.1 not offered")
                    continue
                s.act(b"220 2.0.0 ready to start TLS")
                if s.buf:
                    self._violation(s, "data pipelined after STARTTLS: %r" % s.buf[:100])
                if self.tls_broken == "before-hello":
                    # Junk at once, before the client's hello.
                    s.send(b"this is not a TLS server hello\r\n" * 4)
                    return
                if self.tls_broken:
                    # A real handshake failure: read the client's hello,
                    # answer with something that is not TLS, and close.
                    s.sock.settimeout(10)
                    try:
                        hello = s.sock.recv(65536)
                    except OSError:
                        hello = b""
                    with self.lock:
                        self.tls_hellos.append(hello)
                    s.send(b"this is not a TLS server hello\r\n" * 4)
                    return
                try:
                    s.sock = self.tls_context.wrap_socket(s.sock, server_side=True)
                except (ssl.SSLError, OSError):
                    return
                s.tls = s.sock.cipher()
                txn = None
            elif verb == b"MAIL":
                txn = Txn(s, cmd)
                s.txns.append(txn)
                r = self.mail(s, txn)
                if isinstance(final_reply(r), bytes) and final_reply(r)[:1] != b"2":
                    s.txns.remove(txn)
                    txn = None
                if not s.act(r):
                    return
            elif verb == b"RCPT":
                if txn is None:
                    if not s.act(b"503 5.5.1 MAIL first"):
                        return
                    continue
                addr, params = parse_path(cmd, b"RCPT TO:")
                with self.lock:
                    attempt = self.rcpt_attempts[addr] = self.rcpt_attempts.get(addr, 0) + 1
                r = self.rcpt(s, txn, addr, attempt)
                rb = final_reply(r)
                txn.rcpts.append((addr, params, rb))
                if isinstance(rb, bytes) and rb[:1] == b"2":
                    txn.accepted.append(addr)
                if not s.act(r):
                    return
            elif verb == b"DATA":
                if txn is None:
                    if not s.act(b"503 5.5.1 MAIL first"):
                        return
                    continue
                r = self.data(s, txn)
                go = isinstance(final_reply(r), bytes) and final_reply(r)[:3] == b"354"
                if not s.act(r):
                    return
                if not go:
                    txn = None
                    continue
                self._read_data(s, txn)
                txn.t_dot = time.monotonic()
                r = self.dot(s, txn)
                cur, txn = txn, None
                s.last_reply = None
                cur.dot_reply = repr(r)
                go = s.act(r)
                if s.last_reply is not None:
                    cur.dot_reply = s.last_reply
                if not go:
                    return
            elif verb == b"RSET":
                txn = None
                if not s.act(b"250 2.0.0 reset"):
                    return
            elif verb == b"NOOP":
                if not s.act(b"250 2.0.0 ok"):
                    return
            elif verb == b"QUIT":
                s.act(b"221 2.0.0 bye")
                return
            elif verb == b"AUTH":
                if not s.act(b"504 5.5.4 not here"):
                    return
            else:
                if not s.act(b"500 5.5.2 unknown command"):
                    return

    def _read_data(self, s, txn):
        wire = []
        content = []
        while True:
            line = s.readline()
            wire.append(line)
            if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                self._violation(s, "DATA line without CRLF or with a bare CR: %r" % line[:100])
            if len(line) > 1000:
                self._violation(s, "DATA line longer than 1000 octets with CRLF: %d" % len(line))
            if line == b".\r\n":
                break
            content.append(line[1:] if line.startswith(b".") else line)
        txn.data_wire = b"".join(wire)
        txn.content = b"".join(content)

    # -- queries -------------------------------------------------------------
    def all_txns(self):
        with self.lock:
            return [t for s in self.sessions for t in s.txns]

    def delivered(self):
        """Transactions that ended with a 2xx to the final dot."""
        return [t for t in self.all_txns() if t.delivered]

    def delivered_to(self, addr):
        return [t for t in self.delivered() if addr in t.accepted]

    def n_sessions(self):
        with self.lock:
            return len(self.sessions)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            sessions = list(self.sessions)
        for s in sessions:
            try:
                s.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.sock.close()
            except OSError:
                pass
        self.acceptor.join(5)
        for t in self.threads:
            t.join(5)


# ---------------------------------------------------------------------------
# aiosmtpd

class AioMX:
    """aiosmtpd on (addr, port). rcpt_script(address, attempt) gives the RCPT
    reply (default 250); every envelope that reached the end of data is in
    self.envelopes as a dict."""

    def __init__(self, addr, port, tls_context=None, smtputf8=True, rcpt_script=None, dot_reply=None):
        from aiosmtpd.controller import Controller
        self.addr = addr
        self.port = port
        self.envelopes = []
        self.rcpt_log = []       # (time, address, attempt, reply)
        self.rcpt_attempts = {}
        self.lock = threading.Lock()
        self.rcpt_script = rcpt_script
        self.dot_reply = dot_reply
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                with outer.lock:
                    n = outer.rcpt_attempts[address] = outer.rcpt_attempts.get(address, 0) + 1
                reply = outer.rcpt_script(address, n) if outer.rcpt_script else "250 2.1.5 OK"
                with outer.lock:
                    outer.rcpt_log.append((time.monotonic(), address, n, reply))
                if reply.startswith("2"):
                    envelope.rcpt_tos.append(address)
                    envelope.rcpt_options.extend(rcpt_options)
                return reply

            async def handle_DATA(self, server, session, envelope):
                reply = outer.dot_reply or "250 2.0.0 Message accepted"
                with outer.lock:
                    outer.envelopes.append({
                        "mail_from": envelope.mail_from,
                        "mail_options": list(envelope.mail_options),
                        "rcpt_tos": list(envelope.rcpt_tos),
                        "rcpt_options": list(envelope.rcpt_options),
                        "content": envelope.original_content,
                        "tls": session.ssl is not None,
                        "time": time.monotonic(),
                        "reply": reply,
                    })
                return reply

        kw = {}
        if tls_context is not None:
            kw["tls_context"] = tls_context
            kw["require_starttls"] = False
        self.controller = Controller(Handler(), hostname=addr, port=port, enable_SMTPUTF8=smtputf8,
                                     server_hostname="aio.mx.test", **kw)
        self.controller.start()

    def delivered_to(self, addr):
        with self.lock:
            return [e for e in self.envelopes if addr in e["rcpt_tos"] and e["reply"].startswith("2")]

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass


# ---------------------------------------------------------------------------
# smtp-sink

class SmtpSink:
    """Postfix's smtp-sink on (addr, port); extra: more options."""

    def __init__(self, workdir, addr, port, extra=()):
        self.out_path = os.path.join(workdir, "smtp-sink-%s.out" % addr)
        self.out = open(self.out_path, "wb")
        args = ["smtp-sink", "-c"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += list(extra) + ["%s:%d" % (addr, port), "256"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT)
        self.addr, self.port = addr, port
        # Ready when it accepts.
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection((addr, port), timeout=2) as c:
                    c.recv(100)
                    c.sendall(b"QUIT\r\n")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("smtp-sink did not start: %s" % self.output())
                time.sleep(0.05)
        self.base = None
        # The probe session above counts as one: remember where we start.
        wait_until(lambda: self.counters()["sess"] >= 1, 10, what="smtp-sink to count the probe")
        self.base = self.counters()

    def output(self):
        try:
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def counters(self):
        """{'sess': sessions ended, 'quit': QUITs, 'mesg': messages} since the start."""
        found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", self.output())
        c = dict(zip(("sess", "quit", "mesg"), map(int, found[-1]))) if found else {"sess": 0, "quit": 0, "mesg": 0}
        if self.base:
            c = {k: c[k] - self.base[k] for k in c}
        return c

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        self.out.close()


# ---------------------------------------------------------------------------
# the world: one port, several 127.0.0.x servers

def free_port_on(addrs):
    """A TCP port free on every address of addrs at once."""
    for _ in range(200):
        s0 = socket.socket()
        s0.bind((addrs[0], 0))
        port = s0.getsockname()[1]
        held = [s0]
        ok = True
        for a in addrs[1:]:
            s = socket.socket()
            try:
                s.bind((a, port))
                held.append(s)
            except OSError:
                s.close()
                ok = False
                break
        for s in held:
            s.close()
        if ok:
            return port
    raise RuntimeError("no port free on %r" % (addrs,))


MX_ADDRS = ["127.0.0.%d" % i for i in range(2, 16)]


class MXWorld:
    def __init__(self, workdir):
        self.dir = str(workdir)
        self.port = free_port_on(MX_ADDRS)
        self.servers = []
        self.dns = None

    def scripted(self, addr, **kw):
        s = ScriptedMX(addr, self.port, **kw)
        self.servers.append(s)
        return s

    def aio(self, addr, **kw):
        s = AioMX(addr, self.port, **kw)
        self.servers.append(s)
        return s

    def sink(self, addr, extra=()):
        s = SmtpSink(self.dir, addr, self.port, extra)
        self.servers.append(s)
        return s

    def tarpit(self, addr):
        """Accepts TCP connections and never says a word."""
        s = ScriptedMX(addr, self.port, name="tarpit")
        s.greeting = lambda sess: HANG
        self.servers.append(s)
        return s

    def start_dns(self, zone):
        self.dns = DNSServer(os.path.join(self.dir, "dns"), zone)
        return self.dns

    def close(self):
        errors = []
        for s in self.servers:
            try:
                s.stop()
            except Exception as e:
                errors.append(repr(e))
        if self.dns is not None:
            self.dns.stop()
        return errors


# ---------------------------------------------------------------------------
# detourd's log

LINE_RE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z detourd\[\d+\]: (?P<level>error|warn|info|debug) '
    r'(?P<event>[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*)'
    r'(?P<kv>(?: [a-z][a-z0-9_]*=(?:"(?:[^"\\]|\\.)*"|[^\s"]+))*)$')
KV_RE = re.compile(r' ([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)')


def parse_line(line):
    m = LINE_RE.match(line)
    if not m:
        return None, None
    kv = {}
    for k, v in KV_RE.findall(m.group("kv")):
        if v.startswith('"'):
            v = re.sub(r'\\(.)', r'\1', v[1:-1])
        kv[k] = v
    return m.group("event"), kv


def events(relay, name):
    out = []
    for line in relay.log().splitlines():
        ev, kv = parse_line(line)
        if ev == name:
            out.append(kv)
    return out


def results(relay, qid=None, to=None):
    """delivery.result lines, optionally of one message or recipient."""
    return [kv for kv in events(relay, "delivery.result")
            if (qid is None or kv.get("qid") == qid) and (to is None or kv.get("to") == "<%s>" % to)]


def unparsable_lines(relay):
    """Log lines that are not in `area.event key=value` form (sanitizer
    output aside, which the fixtures report on their own)."""
    bad = []
    for line in relay.log().splitlines():
        if not line.strip():
            continue
        if LINE_RE.match(line):
            continue
        bad.append(line)
    return bad


# ---------------------------------------------------------------------------
# certificates

def make_cert(workdir, name, cn, sans):
    """A self-signed certificate and key (PEM files); returns (cert, key)."""
    cert = os.path.join(workdir, name + ".crt")
    key = os.path.join(workdir, name + ".key")
    san = ",".join(sans)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=%s" % san,
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def server_tls_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def delivery_config(world, **overrides):
    """[delivery] for a relay that delivers to this world's MX hosts, with
    short timers; keyword arguments override (None removes a key)."""
    d = {"pause": "no", "resolver": world.dns.resolver, "mx_port": str(world.port),
         "allow_loopback_mx": "yes", "retry": "1s 2s 3s", "reply_timeout": "3s", "connect_timeout": "2s"}
    for k, v in overrides.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


# ---------------------------------------------------------------------------
# bounces (RFC 3464)

class DSN:
    """A delivery status notification, parsed with Python's email package.
    Asserts its structure: multipart/report; report-type=delivery-status
    with exactly three parts (human text, the status, the original)."""

    def __init__(self, raw):
        import email
        import email.policy
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        m = self.msg
        assert m.get_content_type() == "multipart/report", m.get_content_type()
        assert m.get_param("report-type") == "delivery-status", m.get_param("report-type")
        assert not m.defects, "the bounce does not parse cleanly: %r" % (m.defects,)
        self.parts = m.get_payload()
        assert isinstance(self.parts, list) and len(self.parts) == 3, \
            "expected 3 parts, got %r" % ([p.get_content_type() for p in self.parts] if isinstance(self.parts, list) else self.parts,)
        for p in self.parts:
            assert not p.defects, p.defects
        self.text, self.status_part, self.original_part = self.parts
        assert self.text.get_content_type() == "text/plain", self.text.get_content_type()
        assert self.status_part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"), \
            self.status_part.get_content_type()
        self.status_raw = self._part_body(self.status_part)
        blocks = [b for b in re.split(rb"\r\n\r\n", self.status_raw.strip(b"\r\n")) if b.strip()]
        self.per_message = self._fields(blocks[0])
        self.per_rcpt = [self._fields(b) for b in blocks[1:]]

    def _part_body(self, part):
        """The octets of a part as they are in the raw message."""
        b = self.msg.get_boundary()
        sections = self.raw.split(b"\r\n--" + b.encode())
        for sec in sections[1:]:
            head, _, body = sec.partition(b"\r\n\r\n")
            if part.get_content_type().encode() in head.lower():
                return body
        raise AssertionError("part %s not found in the raw bounce" % part.get_content_type())

    @staticmethod
    def _fields(block):
        out = {}
        for line in re.split(rb"\r\n(?![ \t])", block):
            if not line.strip():
                continue
            k, sep, v = line.partition(b":")
            assert sep, "not a header field in the delivery status: %r" % line
            out.setdefault(k.decode("ascii", "replace").strip().lower(), []).append(
                v.strip().decode("utf-8", "replace"))
        return {k: v[0] if len(v) == 1 else v for k, v in out.items()}

    def recipients(self):
        return [r.get("final-recipient", "").split(";", 1)[-1].strip() for r in self.per_rcpt]

    def original_bytes(self):
        return self._part_body(self.original_part)


# ---------------------------------------------------------------------------
# tests' common steps

def simple_zone(**domains):
    """{'dom.test': '127.0.0.2', ...} -> a zone with one MX per domain."""
    zone = {}
    for i, (dom, addr) in enumerate(domains.items()):
        dom = dom.replace("_", ".")
        zone[dom] = {"MX": [[10, "mx.%s" % dom]]}
        zone["mx.%s" % dom] = {"A": [addr]}
    return zone


def submit(relay, sender, rcpts, body, mail_params="", rcpt_params=""):
    """One message, our own dot-stuffing, through the relay's plain
    listener; returns its queue id."""
    with relay.client() as c:
        c.ehlo()
        c.expect("MAIL FROM:<%s>%s" % (sender, mail_params), 250)
        for r in rcpts:
            c.expect("RCPT TO:<%s>%s" % (r, rcpt_params), 250)
        rep = c.data(body)
        assert rep.code == 250, rep
        assert rep.qid, rep
        c.cmd("QUIT")
        return rep.qid


def wait_gone(relay, qid, timeout=30):
    wait_until(lambda: qid not in relay.queue_ids(), timeout, what="message %s to leave the queue" % qid)


def rcpt_states(relay, qid):
    return {r["address"]: r for r in relay.show(qid)["recipients"]}


def new_relay(relays, world, delivery=None, **kw):
    return relays.new(delivery=delivery_config(world, **(delivery or {})), **kw)


def no_violations(*servers):
    for s in servers:
        assert not s.violations, "%s saw protocol violations from detourd: %s" % (s.name, s.violations)


SPECIAL = (b"From: <a@sender.test>\r\n"
           b"To: <b@dest.test>\r\n"
           b"Subject: dots and bytes\r\n"
           b"\r\n"
           b".\r\n"
           b"..\r\n"
           b"...\r\n"
           b". a dot and a space\r\n"
           b".leading dot\r\n"
           b"\r\n"
           b".\r\n"
           b"caf\xc3\xa9 \x80\x81\xfe\xff 8-bit\r\n"
           b"line ending in a dot.\r\n"
           b" .space then dot\r\n"
           b".\r\n")
