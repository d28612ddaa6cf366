#!/usr/bin/env python3
"""measure.py: one time-boxed benchmark run against one server.

smtp-source (-c) pushes messages into 127.0.0.1:PORT for --secs seconds and
is then stopped.  smtp-sink's -c counter (in --sink-out) tells how many
messages the server relayed; once it has caught up with smtp-source's counter
(less at most one in-flight message per session) and gone quiet, that number
is the count accepted and relayed end to end.  We sample the server's processes
(all tasks of its cgroup) every 0.25 s for RSS/PSS and reading its CPU time
(cpuacct) before and after.  Prints one JSON object."""
import argparse, json, os, re, signal, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--name", required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--rcpt", default="b@example.org")
ap.add_argument("--sessions", type=int, default=1)
ap.add_argument("--size", type=int, default=4096)
ap.add_argument("--secs", type=float, default=3.0)     # acceptance time box
ap.add_argument("--drain", type=float, default=5.0)   # max wait for the sink
ap.add_argument("--persist", action="store_true")      # smtp-source -d
ap.add_argument("--cgroup", default="")                # cpuacct cgroup dir
ap.add_argument("--sink-out", required=True)
ap.add_argument("--relay", type=int, default=1)        # 0: target IS the sink
ap.add_argument("--tag", default="")
# detour: a command printing the server's monotonic count of messages it has
# acknowledged with 250; on a drain timeout it gives the exact accepted count
# instead of smtp-source's counter (which is up to one message per session high)
ap.add_argument("--accepted-cmd", default="")
a = ap.parse_args()

def sink_count():
    try:
        with open(a.sink_out, "rb") as f:
            f.seek(max(0, os.path.getsize(a.sink_out) - 200))
            m = re.findall(rb"mesg=(\d+)", f.read())
            return int(m[-1]) if m else 0
    except OSError:
        return 0

def cg_pids():
    try:
        with open(os.path.join(a.cgroup, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []

def cg_cpu():
    """CPU seconds of the cgroup: cpuacct.usage (v1, ns) or cpu.stat (v2)."""
    try:
        with open(os.path.join(a.cgroup, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(a.cgroup, "cpu.stat")) as f:
            for line in f:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    except (OSError, ValueError):
        pass
    return None

def server_accepted():
    """The server's own count of messages it answered 250 (--accepted-cmd),
    or None.  Used only when the relay lags (drain timeout)."""
    if not a.accepted_cmd: return None
    try:
        r = subprocess.run(a.accepted_cmd, shell=True, capture_output=True, timeout=10)
        return int(r.stdout.split()[-1]) if r.returncode == 0 and r.stdout.split() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None

def mem():
    """(sum RSS, sum PSS) in KiB over the server's processes."""
    rss = pss = 0
    for pid in cg_pids():
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"): rss += int(line.split()[1])
                    elif line.startswith("Pss:"): pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss

def wait_quiet(limit=20.0):
    """Wait until the sink counter stops moving (leftovers of a prior run)."""
    end, last = time.time() + limit, sink_count()
    while time.time() < end:
        time.sleep(0.5)
        c = sink_count()
        if c == last: return
        last = c

wait_quiet()
res = dict(name=a.name, sessions=a.sessions, size=a.size, persist=a.persist, tag=a.tag)
idle_rss, idle_pss = mem()
a0 = server_accepted()
s0, c0 = sink_count(), cg_cpu()
cmd = ["smtp-source", "-c", "-M", "bench.localdomain", "-s", str(a.sessions),
       "-m", "10000000", "-l", str(a.size), "-f", "a@example.com", "-t", a.rcpt]
if a.persist: cmd.insert(1, "-d")
cmd.append(f"127.0.0.1:{a.port}")
out = open(f"/tmp/smtpbench-src.{os.getpid()}", "w+b")
t0 = time.time()
src = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
peak_rss = peak_pss = 0
stopped = False
t_acc = counter = None
last_mem = 0.0
last_count, last_change = 0, t0      # last time the sink counter moved
while True:
    time.sleep(0.05)
    now = time.time()
    if now - last_mem >= 0.25:
        r, p = mem(); last_mem = now
        peak_rss, peak_pss = max(peak_rss, r), max(peak_pss, p)
    got = sink_count() - s0
    if got != last_count:
        last_count, last_change = got, now
    if not stopped and (src.poll() is not None or now - t0 >= a.secs):
        if src.poll() is None:
            src.send_signal(signal.SIGTERM)
        src.wait()
        t_acc = time.time() - t0
        stopped = True
        out.seek(0)
        data = out.read()
        nums = re.findall(rb"(\d+)\r", data)
        # smtp-source -c counts a message when DATA gets its 354, so up to
        # one message per session was still in flight when it was stopped
        counter = int(nums[-1]) if nums else 0
        errs = [l for l in data.replace(b"\r", b"\n").split(b"\n") if re.search(rb"[a-z]", l)]
        if errs: res["source_errors"] = errs[-1].decode(errors="replace")[:200]
    if stopped:
        # done when everything counted has arrived, or all but the (at most
        # one per session) in-flight messages and the sink went quiet
        if got >= counter or (got >= counter - a.sessions and now - last_change >= 0.4):
            accepted = got                  # exact: fully received and relayed
            t_e2e = max(last_change - t0, 1e-3) if got else t_acc
            break
        if now - t0 > a.secs + a.drain:
            res["drain_timeout"] = True     # relay lags: accepted is the
            res["delivered"] = got          # source counter (<= sessions high)
            accepted = counter              # or the server's own count
            a1 = server_accepted()
            if a0 is not None and a1 is not None and a1 >= a0:
                accepted = a1 - a0
                res["accepted_from"] = "server"
            else:
                res["accepted_from"] = "source_counter"
            t_e2e = now - t0
            break
out.close(); os.unlink(out.name)
time.sleep(0.3)                      # let post-delivery bookkeeping finish
c1 = cg_cpu()
delivered = min(accepted, got)
res.update(accepted=accepted, source_counter=counter, t_accept=round(t_acc, 3), t_e2e=round(t_e2e, 3),
           accept_rate=round(accepted / t_acc, 1) if t_acc else 0,
           e2e_rate=round(delivered / t_e2e, 1) if t_e2e else 0,
           idle_rss_kib=idle_rss, idle_pss_kib=idle_pss,
           peak_rss_kib=peak_rss, peak_pss_kib=peak_pss)
if c0 is not None and c1 is not None and accepted:
    res["cpu_s_per_1000"] = round((c1 - c0) / accepted * 1000, 3)
print(json.dumps(res), flush=True)
