#!/usr/bin/python3
"""Watches a runaway from inside the guest, for tests/vm/bench/containment.sh.
  vm-runaway-watch.py PID CGROUP SECONDS TARGET_MIB OUT
Samples every 0.2 s until PID is gone or SECONDS have passed since it started, then
writes one line of key=value figures to OUT (sizes in MiB, times in s from its start).
Inside the guest because a thrashing guest answers ssh late or not at all; only
python3-minimal modules."""
import os
import sys
import time

pid, cg, seconds = int(sys.argv[1]), "/sys/fs/cgroup" + sys.argv[2], float(sys.argv[3])
target, out = int(sys.argv[4]), sys.argv[5]


def table(path):
    try:
        return {k: int(v) for k, v in (line.split()[:2] for line in open(path) if line.strip())}
    except (OSError, ValueError):
        return {}


def number(path):
    try:
        return int(open(path).read())
    except (OSError, ValueError):
        return 0


def sizes():
    """(RSS, swap) of PID in KiB; None once it is gone or a zombie."""
    try:
        f = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    except OSError:
        return None
    if f["State"].split()[0] in ("Z", "X"):
        return None
    return tuple(int(f.get(k, "0 kB").split()[0]) for k in ("VmRSS", "VmSwap"))


# The runaway's start on this clock: its start time in ticks since boot against uptime.
try:
    ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    uptime = float(open("/proc/uptime").read().split()[0])
    start = time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
except (OSError, IndexError, ValueError):
    start = time.time()
vm0, ev0, sw0 = table("/proc/vmstat"), table(cg + "/memory.events"), table(cg + "/memory.swap.events")
peak = dict(rss=0, swap=0, cg=0, cg_swap=0)
full_at = ended_at = None
samples, max_gap, last = 0, 0.0, time.time()
while True:
    now = time.time()
    max_gap, last = max(max_gap, now - last), now
    s = sizes()
    if s is None:
        ended_at = now - start
        break
    samples += 1
    peak["rss"], peak["swap"] = max(peak["rss"], s[0]), max(peak["swap"], s[1])
    peak["cg"] = max(peak["cg"], number(cg + "/memory.current") >> 10)
    peak["cg_swap"] = max(peak["cg_swap"], number(cg + "/memory.swap.current") >> 10)
    if full_at is None and s[0] + s[1] >= target * 1024 * 98 // 100:
        full_at = now - start
    if now - start >= seconds:
        break
    time.sleep(0.2)
vm1, ev1, sw1 = table("/proc/vmstat"), table(cg + "/memory.events"), table(cg + "/memory.swap.events")


def delta(a, b, k):
    return b.get(k, 0) - a.get(k, 0)


def fmt(v):
    return "none" if v is None else f"{v:.1f}"


figures = [
    f"start={start:.3f}",
    f"ended={0 if ended_at is None else 1}",
    f"secs={fmt(ended_at if ended_at is not None else time.time() - start)}",
    f"full_at={fmt(full_at)}",
    *(f"{k}_peak={v >> 10}" for k, v in peak.items()),
    *(f"{k}={delta(vm0, vm1, k)}" for k in ("pswpout", "pswpin", "oom_kill")),
    *(f"ev_{k}={delta(ev0, ev1, k)}" for k in ("high", "max", "oom", "oom_kill")),
    *(f"swev_{k}={delta(sw0, sw1, k)}" for k in ("max", "fail")),
    f"samples={samples}",
    f"max_gap={max_gap:.1f}",
]
with open(out + ".tmp", "w") as f:
    f.write(" ".join(figures) + "\n")
os.rename(out + ".tmp", out)
