"""Fixtures for the detourd integration tests.

A Relay is one real detourd (the sanitizer build in $DETOUR_BUILD) with its
own configuration, state folder and log, listening on free loopback ports.
Every daemon a test starts is stopped by its PID at teardown; a sanitizer
report or a non-zero exit status on SIGTERM fails the test.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import helpers  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("DETOUR_BUILD") or os.path.join(TOP, "build", "asan"))
DETOURD = os.path.join(BUILD, "detourd")
DETOURCTL = os.path.join(BUILD, "detourctl")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "AddressSanitizer:DEADLYSIGNAL",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "WARNING: ThreadSanitizer",
)


def sanitizer_report(text):
    """The first sanitizer report line in text, or None."""
    for line in text.splitlines():
        if any(m in line for m in SANITIZER_MARKERS):
            return line
    return None


def daemon_env(extra=None):
    env = dict(os.environ)
    env.pop("DETOUR_CRASHPOINT", None)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


class Relay:
    """One detourd with its configuration, state folder and log."""

    def __init__(self, base_dir, name="relay", hostname="relay.test", trusted="127.0.0.0/8 ::1",
                 listeners=None, limits=None, server=None, extra_sections="", delivery=None):
        self.dir = os.path.join(base_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.state_dir = os.path.join(self.dir, "state")
        # A unix socket path must stay short (108 octets): pytest's tmp_path
        # can be long, so the control socket lives in its own short folder.
        self.sock_dir = tempfile.mkdtemp(prefix="dtr-")
        self.control_socket = os.path.join(self.sock_dir, "control.sock")
        self.conf = os.path.join(self.dir, "detour.conf")
        self.log_path = os.path.join(self.dir, "detourd.log")
        self.hostname = hostname
        self.trusted = trusted
        self.server = {"shutdown_grace": "3s"}
        self.server.update(server or {})
        self.limits = dict(limits or {})
        # Delivery is paused unless a test asks for it, so that what a test
        # queued stays in the queue to be looked at; and the resolver is
        # never the system's (DESIGN.md, network rules): port 9 on loopback
        # has no DNS server, so a stray look-up fails at once, locally.
        self.delivery = {"pause": "yes", "resolver": "127.0.0.1:9"}
        self.delivery.update(delivery or {})
        self.extra_sections = extra_sections
        # name -> dict(addrs=[...], tls=..., auth=..., other keys)
        if listeners is None:
            listeners = {"plain": {}}
        self.listeners = {}
        for lname, spec in listeners.items():
            spec = dict(spec)
            spec.setdefault("addrs", ["127.0.0.1", "::1"])
            spec.setdefault("tls", "none")
            spec.setdefault("auth", "off")
            self.listeners[lname] = spec
        self.ports = {}
        self._assign_ports()
        self.proc = None
        self.log_offset = 0  # where the current run's log starts
        self.exit_codes = []
        # Run in the child before detourd starts (resource limits, say).
        self.preexec_fn = None
        self.write_config()

    # -- configuration ---------------------------------------------------
    def _assign_ports(self):
        for lname, spec in self.listeners.items():
            self.ports[lname] = helpers.free_port(v6=any(":" in a for a in spec["addrs"]))

    @property
    def port(self):
        """The port of the first listener."""
        return next(iter(self.ports.values()))

    def listen_value(self, lname):
        port = self.ports[lname]
        return " ".join(("[%s]:%d" % (a, port)) if ":" in a else ("%s:%d" % (a, port))
                        for a in self.listeners[lname]["addrs"])

    def config_text(self):
        out = ["[server]",
               "hostname = %s" % self.hostname,
               "state_dir = %s" % self.state_dir,
               "control_socket = %s" % self.control_socket]
        if self.trusted is not None:
            out.append("trusted = %s" % self.trusted)
        for k, v in self.server.items():
            out.append("%s = %s" % (k, v))
        out.append("")
        for lname, spec in self.listeners.items():
            out.append("[listener %s]" % lname)
            out.append("listen = %s" % self.listen_value(lname))
            for k, v in spec.items():
                if k != "addrs":
                    out.append("%s = %s" % (k, v))
            out.append("")
        out.append("[delivery]")
        for k, v in self.delivery.items():
            out.append("%s = %s" % (k, v))
        out.append("")
        if self.limits:
            out.append("[limits]")
            for k, v in self.limits.items():
                out.append("%s = %s" % (k, v))
            out.append("")
        if self.extra_sections:
            out.append(self.extra_sections)
        return "\n".join(out) + "\n"

    def write_config(self, text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text())

    # -- process ---------------------------------------------------------
    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, env=None, wait=True):
        """Start detourd -f; wait until it has started and accepts."""
        assert not self.running(), "already running"
        for attempt in range(5):
            with open(self.log_path, "ab") as log:
                self.log_offset = log.tell()
                self.proc = subprocess.Popen([DETOURD, "-c", self.conf, "-f"], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, env=daemon_env(env),
                                             start_new_session=True, preexec_fn=self.preexec_fn)
            if not wait:
                return self
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                text = self.run_log()
                if "server.start" in text:
                    break
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
            if self.proc.poll() is not None:
                text = self.run_log()
                self.proc.wait()
                self.exit_codes.append(self.proc.returncode)
                if "cannot listen" in text and "in use" in text and attempt < 4:
                    # Someone took the port between our probe and the bind.
                    self._assign_ports()
                    self.write_config()
                    continue
                raise AssertionError("detourd exited with %s at start-up:\n%s" % (self.proc.returncode, text))
            if "server.start" not in self.run_log():
                self.kill9()
                raise AssertionError("detourd did not start within %ss:\n%s" % (START_TIMEOUT, self.run_log()))
            self.wait_accepting()
            return self
        raise AssertionError("could not start detourd")

    def wait_accepting(self, timeout=START_TIMEOUT):
        host = next(iter(self.listeners.values()))["addrs"][0]
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((host, self.port), timeout=5):
                    return
            except OSError:
                if time.monotonic() > deadline or not self.running():
                    raise AssertionError("detourd does not accept on port %d:\n%s" % (self.port, self.run_log()))
                time.sleep(0.05)

    def signal(self, sig):
        assert self.running(), "detourd is not running:\n" + self.run_log()
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the process to end by itself; returns its exit status."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("detourd (pid %d) did not exit within %ss" % (self.proc.pid, timeout))
        self.exit_codes.append(rc)
        return rc

    def stop(self, check=True, timeout=STOP_TIMEOUT):
        """SIGTERM, wait, and (check) require exit status 0 and a log
        without sanitizer reports."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError("detourd did not exit within %ss of SIGTERM:\n%s" % (timeout, self.run_log()[-5000:]))
            self.exit_codes.append(rc)
        rc = self.proc.returncode
        self.proc = None
        if check:
            self.check_sanitizers()
            assert rc == 0, "detourd exited with status %s after SIGTERM:\n%s" % (rc, self.run_log()[-5000:])
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
            self.exit_codes.append(self.proc.returncode)
        self.proc = None

    def restart(self, env=None):
        self.stop()
        return self.start(env=env)

    def check_sanitizers(self):
        bad = sanitizer_report(self.log())
        if bad:
            raise AssertionError("sanitizer report in the detourd log: %s\n%s" % (bad, self.log()[-8000:]))

    # -- log -------------------------------------------------------------
    def log(self):
        """Everything every run of this relay wrote to standard error."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def run_log(self):
        """What the current (or last) run wrote."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=30.0, since=0):
        return helpers.wait_for(lambda: needle in self.log()[since:], timeout=timeout,
                                what="%r in the detourd log" % needle)

    # -- detourctl -------------------------------------------------------
    def ctl(self, *args, input=None, timeout=120, binary=False, conf=None):
        """Run detourctl -c CONF ARGS; returns the CompletedProcess. A
        sanitizer report from detourctl fails the test."""
        p = subprocess.run([DETOURCTL, "-c", conf or self.conf, *args], input=input,
                           capture_output=True, timeout=timeout, env=daemon_env())
        err = p.stderr.decode("utf-8", "replace")
        bad = sanitizer_report(err)
        assert not bad, "sanitizer report from detourctl %s: %s\n%s" % (" ".join(args), bad, err[-5000:])
        if not binary:
            p = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode("utf-8", "replace"), err)
        return p

    def queue(self):
        p = self.ctl("queue", "list", "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def queue_ids(self):
        return [m["id"] for m in self.queue()]

    def show(self, qid):
        p = self.ctl("queue", "show", qid, "--json")
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def cat(self, qid):
        p = self.ctl("queue", "cat", qid, binary=True)
        assert p.returncode == 0, p.stderr
        return p.stdout

    def by_sender(self, sender):
        return [m for m in self.queue() if m["sender"] == sender]

    def client(self, host="127.0.0.1", listener=None, **kw):
        port = self.ports[listener] if listener else self.port
        return helpers.SMTPClient(host, port, **kw)

    def cleanup(self):
        shutil.rmtree(self.sock_dir, ignore_errors=True)


class RelayPool:
    """Creates relays and stops every one of them at the end."""

    def __init__(self, base_dir):
        self.base_dir = str(base_dir)
        self.relays = []

    def new(self, start=True, **kw):
        kw.setdefault("name", "relay%d" % len(self.relays))
        r = Relay(self.base_dir, **kw)
        self.relays.append(r)
        if start:
            r.start()
        return r

    def close(self):
        errors = []
        for r in self.relays:
            try:
                r.stop(check=True)
            except AssertionError as e:
                errors.append(str(e))
            finally:
                if r.proc is not None:
                    r.kill9()
                r.cleanup()
        # A run that was killed on purpose (kill9/crash points) is not
        # checked for its exit status, but its log still must not hold a
        # sanitizer report.
        for r in self.relays:
            bad = sanitizer_report(r.log())
            if bad and not any(bad in e for e in errors):
                errors.append("sanitizer report in %s: %s" % (r.log_path, bad))
        if errors:
            pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def relays(tmp_path):
    pool = RelayPool(tmp_path)
    yield pool
    pool.close()


@pytest.fixture
def relay(relays):
    """A started relay: one plain listener on 127.0.0.1 and ::1, trusted
    loopback, defaults otherwise."""
    return relays.new()


@pytest.fixture(scope="module")
def module_relays(tmp_path_factory):
    pool = RelayPool(tmp_path_factory.mktemp("relays"))
    yield pool
    pool.close()


# -- delivery: DNS, MX hosts ---------------------------------------------------

@pytest.fixture
def world(tmp_path):
    """An MXWorld (mailworld.py): MX servers on 127.0.0.x sharing one port,
    and (once started) a DNS server; everything stopped by PID at the end."""
    import mailworld
    w = mailworld.MXWorld(tmp_path / "world")
    os.makedirs(w.dir, exist_ok=True)
    yield w
    errors = w.close()
    if errors:
        pytest.fail("stopping the MX world: %s" % "; ".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """Two self-signed certificates (localhost, 127.0.0.1, ::1) with their
    keys: cert/key and cert2/key2."""
    d = str(tmp_path_factory.mktemp("certs"))
    a_cert, a_key = helpers.make_self_signed_cert(d, "a")
    b_cert, b_key = helpers.make_self_signed_cert(d, "b")
    return {"dir": d, "cert": a_cert, "key": a_key, "cert2": b_cert, "key2": b_key}
