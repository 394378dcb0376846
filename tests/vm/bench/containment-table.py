#!/usr/bin/env python3
"""The summary table of tests/vm/bench/containment.sh.
  containment-table.py WINDOW BASELINE_FILE CONTAIN_FILE
Each file holds one phase's key=value lines. Exits 1 unless both phases have figures
(the runaway watcher's line and bob's probe)."""
import statistics
import sys

window = sys.argv[1]
phases = []
for path in sys.argv[2:]:
    fig = {}
    try:
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("=")
            fig[k] = v.strip()
    except OSError:
        pass
    fig["w"] = dict(kv.split("=", 1) for kv in fig.get("watch", "").split())
    phases.append(fig)


def probe(f, key):
    v = f.get(key, "").split()
    return f"{v[2]} / {v[3]} ms (n {v[0]})" if len(v) == 4 else "—"


def logins(f):
    raw = f.get("logins", "").split()
    ok = [int(x) / 1000 for x in raw if x != "fail"]
    fails = len(raw) - len(ok)
    if not raw:
        return "—"
    s = f"{statistics.median(ok):.1f} / {max(ok):.1f} s" if ok else "none answered"
    return s + f" ({len(ok)} ok" + (f", {fails} failed after 120 s)" if fails else ")")


def field(line, key):
    for part in line.replace(" ", ",").replace(":", ",").split(","):
        if part.startswith(key + "="):
            return part.split("=", 1)[1]
    return None


def fate(f):
    w = f["w"]
    if not w:
        return f.get("guest", "no figures")
    kern, pid = f.get("kernel", ""), f.get("pid")
    kern_ours = kern and field(kern, "pid") == pid
    if w.get("ended") != "1":
        full = w.get("full_at", "none")
        grew = f"reached 3x cap after {full} s" if full != "none" else "never reached 3x cap"
        return f"still running at {window} s ({grew}): killed by the bench"
    if f.get("watchdog"):
        return f"contain-watchdog ({field(f['watchdog'], 'CONTAIN_REASON')}): memcg OOM kill at {field(kern, 'oom_memcg') or '?'}"
    if kern_ours and "CONSTRAINT_MEMCG" in kern:
        return f"kernel memcg OOM kill at {field(kern, 'oom_memcg')} (memory_max)"
    if kern_ours:
        return f"kernel global OOM kill ({field(kern, 'constraint')})"
    if f.get("oomd"):
        return "systemd-oomd: " + f["oomd"][:60]
    return "exited on its own"


def row(name, fn):
    print(f"| {name} | " + " | ".join(fn(f) for f in phases) + " |")


watched = lambda key, unit="": lambda f: (f["w"].get(key, "—") + unit) if f["w"] else "—"
print()
print("| | contain not installed | contain installed |")
print("| --- | --- | --- |")
row("swap on", lambda f: f.get("swap_mib", "—") + " MiB")
row("bob's probe idle: p99 / max", lambda f: probe(f, "idle"))
row("bob's probe during the runaway: p99 / max", lambda f: probe(f, "probe"))
row("pswpout / pswpin during the runaway (pages)", lambda f: f"{f['w']['pswpout']} / {f['w']['pswpin']}" if f["w"] else "—")
row("root ssh login during it: median / max", logins)
row("runaway fate", fate)
row("time to end (from its start)", lambda f: f"{f['w']['secs']} s" if f["w"].get("ended") == "1" else (f"not ended ({window} s window)" if f["w"] else "—"))
row("runaway peak RSS / in swap", lambda f: f"{f['w']['rss_peak']} / {f['w']['swap_peak']} MiB" if f["w"] else "—")
row("alice's slice peak memory.current / memory.swap.current", lambda f: f"{f['w']['cg_peak']} / {f['w']['cg_swap_peak']} MiB" if f["w"] else "—")
row("alice's slice memory.events high / max / oom_kill", lambda f: f"{f['w']['ev_high']} / {f['w']['ev_max']} / {f['w']['ev_oom_kill']}" if f["w"] else "—")
row("alice's slice memory.swap.events max / fail", lambda f: f"{f['w']['swev_max']} / {f['w']['swev_fail']}" if f["w"] else "—")
row("OOM kills on the box", watched("oom_kill"))
row("in-guest watcher's longest gap between 0.2 s samples", watched("max_gap", " s"))
for f, name in zip(phases, ("baseline", "contain")):
    if f.get("guest"):
        print(f"{name}: the guest {f['guest']}")
ok = all(f["w"] and len(f.get("probe", "").split()) == 4 for f in phases) and len(phases) == 2
sys.exit(0 if ok else 1)
