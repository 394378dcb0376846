#!/usr/bin/env python3
"""vm-cpu.py mark FILE | vm-cpu.py since FILE UID: `mark` saves the CPU time spent so far (the
box's, from /proc/stat, and each top cgroup's usage_usec); `since` prints, for the time since the
mark, the share of the CPU that was busy, the shares of system.slice, root's slice, UID's slice,
the rest (naming each top cgroup at 1% or more), and of what no cgroup is charged for (kernel
threads), the iowait share, and the share of the time some task of system.slice, of sshd and
of root's slice waited for the CPU and for IO (PSI). Says whether a phase was bound by the
guest's CPU, by whom, and what the logins waited for."""
import json, os, sys, time

CG = "/sys/fs/cgroup"


def usage(path):
    try:
        for line in open(f"{CG}/{path}/cpu.stat"):
            key, value = line.split()
            if key == "usage_usec":
                return int(value)
    except OSError:
        pass
    return 0


def stall(path, kind):
    """Microseconds some task in PATH waited for KIND (cpu, io) so far: its PSI total."""
    try:
        for line in open(f"{CG}/{path}/{kind}.pressure"):
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


ROOT_SLICE = "user.slice/user-0.slice"
STALLED = {"system.slice": "system.slice", "sshd": "system.slice/ssh.service", "root": ROOT_SLICE}


def snapshot(uid):
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    tick = 1e6 / os.sysconf("SC_CLK_TCK")
    idle, iowait = fields[3] * tick, fields[4] * tick
    tops = {d: usage(d) for d in os.listdir(CG) if os.path.isfile(f"{CG}/{d}/cpu.stat")}
    return {
        "wall": time.time(),
        "total": sum(fields[:8]) * tick,
        "idle": idle,
        "iowait": iowait,
        "tops": tops,
        "root": usage(ROOT_SLICE),
        "user": usage(f"user.slice/user-{uid}.slice") if uid is not None else 0,
        "stalls": {f"{who} {kind}": stall(path, kind) for who, path in STALLED.items() for kind in ("cpu", "io")},
    }


def main():
    verb, path = sys.argv[1], sys.argv[2]
    uid = int(sys.argv[3]) if len(sys.argv) > 3 else None
    if verb == "mark":
        with open(path, "w") as f:
            json.dump(snapshot(uid), f)
        return
    a, b = json.load(open(path)), snapshot(uid)
    total = b["total"] - a["total"] or 1
    pct = lambda v: f"{100 * v / total:.0f}%"
    d = lambda key: b[key] - a[key]
    tops = {k: v - a["tops"].get(k, 0) for k, v in b["tops"].items()}
    wall = (b["wall"] - a["wall"]) * 1e6 or 1
    busy = total - d("idle") - d("iowait")
    system = tops.get("system.slice", 0)
    users = tops.get("user.slice", 0)
    rest = sum(tops.values()) - system - users
    named = ", ".join(
        f"{k} {pct(v)}" for k, v in sorted(tops.items(), key=lambda kv: -kv[1])
        if k not in ("system.slice", "user.slice") and v >= total / 100
    )
    unowned = max(busy - sum(tops.values()), 0)
    print(
        f"{b['wall'] - a['wall']:.0f} s: busy {pct(busy)} (system.slice {pct(system)}, "
        f"root {pct(d('root'))}, uid {uid} {pct(d('user'))}, "
        f"other users {pct(max(users - d('root') - d('user'), 0))}, other cgroups {pct(rest)}{f' ({named})' if named else ''}, "
        f"kernel threads {pct(unowned)}), iowait {pct(d('iowait'))}; stalled (PSI some, share of "
        f"the time): "
        + ", ".join(
            f"{key} {100 * (b['stalls'][key] - a['stalls'][key]) / wall:.0f}%"
            for key in b["stalls"]
        )
    )


main()
