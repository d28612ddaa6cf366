#!/usr/bin/env python3
"""summarize.py RAW.jsonl NAME...: one markdown table, one column per server
(in the order given), medians over repetitions (n = number of runs).
RATIOS="a/b ..." (env) adds one column per pair: the median of the per-
repetition ratios a/b (runs with the same tag were made minutes apart in the
same interleaved round, so pairing cancels most of the drift of a shared
machine); rows without tags use median(a) / median(b).
(detour: the RATIOS columns are our addition to peer-bench.)"""
import json, os, statistics, sys
from collections import defaultdict

raw, names = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for l in open(raw) if l.strip()]
vals = defaultdict(list)   # (row label, name) -> [values]
tagged = defaultdict(dict) # (row label, name) -> {tag: value}
order = []
cur_tag = None

def add(label, name, v):
    if v is None: return
    if label not in order: order.append(label)
    vals[(label, name)].append(v)
    if cur_tag: tagged[(label, name)][cur_tag] = v

def kib2mib(v): return None if v is None else v / 1024

for r in rows:
    n = r.get("name")
    cur_tag = r.get("tag")
    if n == "disk":
        add(f"disk: fsync/s {r['kind'].replace('fsync_', '')} threads", "disk", r["ops_per_s"]); continue
    if "accept_rate" in r:
        cfg = ("persistent 20 sess 4 KiB" if r.get("persist") else
               f"{r['sessions']} sess {r['size'] // 1024} KiB")
        add(f"{cfg}: accepted msg/s", n, r["accept_rate"])
        # a run that hit its drain bound with nothing relayed measured no
        # end-to-end rate at all (detour: blank, not 0)
        if not (r.get("drain_timeout") and not r.get("delivered")):
            add(f"{cfg}: end-to-end msg/s", n, r["e2e_rate"])
        add(f"{cfg}: CPU s / 1000 msg", n, r.get("cpu_s_per_1000"))
        add(f"{cfg}: peak RSS sum MiB", n, kib2mib(r["peak_rss_kib"]))
        add(f"{cfg}: peak PSS sum MiB", n, kib2mib(r["peak_pss_kib"]))
        if r.get("drain_timeout"): add(f"{cfg}: drain timeouts", n, 1)
        if r.get("source_errors"): add(f"{cfg}: runs with client errors", n, 1)
    elif "held_rss_kib" in r:
        add(f"{r['conns']} idle conns: banners received", n, r["banners"])
        add(f"{r['conns']} idle conns: RSS sum MiB (idle before)", n, kib2mib(r["idle_rss_kib"]))
        add(f"{r['conns']} idle conns: RSS sum MiB (holding)", n, kib2mib(r["held_rss_kib"]))
        add(f"{r['conns']} idle conns: PSS sum MiB (holding)", n, kib2mib(r["held_pss_kib"]))
        add(f"{r['conns']} idle conns: processes", n, r["held_procs"])
    elif "fsyncs_before_ack_per_msg" in r:
        add("durability: fsync calls before 250 / msg", n, r["fsyncs_before_ack_per_msg"])
        add("durability: fsync calls after 250 / msg", n, r["fsyncs_after_ack_per_msg"])

def fmt(xs, label):
    if not xs: return ""
    if "timeouts" in label or "errors" in label: return str(len(xs))
    m = statistics.median(xs)
    s = f"{m:.0f}" if m >= 100 else f"{m:.1f}" if m >= 10 else f"{m:.2f}"
    return s if len(xs) >= 3 or "durability" in label else s + f" (n={len(xs)})"

def ratio(label, pair):
    a, b = pair.split("/", 1)
    if label.startswith(("disk", "durability")) or "timeouts" in label or "errors" in label \
            or "banners" in label or "processes" in label:
        return ""
    ta, tb = tagged.get((label, a), {}), tagged.get((label, b), {})
    both = [t for t in ta if t in tb and tb[t]]
    if both:
        q = statistics.median(ta[t] / tb[t] for t in both)
    else:
        xa, xb = vals.get((label, a), []), vals.get((label, b), [])
        if not xa or not xb or statistics.median(xb) == 0: return ""
        q = statistics.median(xa) / statistics.median(xb)
    return f"{q:.2f}" if q >= 0.1 else f"{q:.3f}"

pairs = [p for p in os.environ.get("RATIOS", "").split() if "/" in p]
cols = names + (["disk"] if any(l.startswith("disk") for l in order) else [])
print("| metric (median) | " + " | ".join(cols + pairs) + " |")
print("|---|" + "---|" * (len(cols) + len(pairs)))
for label in order:
    print(f"| {label} | " + " | ".join([fmt(vals.get((label, c), []), label) for c in cols] +
                                       [ratio(label, p) for p in pairs]) + " |")
