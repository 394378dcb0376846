#!/usr/bin/env python3
"""qemu-cpu.py mark FILE PID | qemu-cpu.py since FILE PID: on the host, `mark` saves the CPU
time spent so far by QEMU process PID's threads (the vCPUs, named with -name debug-threads=on;
the main loop, which also runs the user-mode network and the disk's throttling; the rest), by
every other QEMU and by the host; `since` prints each as a share of one host core for the time
since the mark, with the host's cores busy and stolen. What the guest cannot see: whether its
emulated CPU got a host core."""
import json, os, sys, time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path):
    """utime + stime of a /proc stat file, in seconds (0 if it is gone)."""
    try:
        text = open(stat_path).read()
    except OSError:
        return 0.0
    # The name is in parentheses and may hold spaces: the fields follow the last ')'.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def snapshot(pid):
    # The process's own stat counts its threads, those ended too (the disk's IO workers come
    # and go): the rest is that total less the vCPUs and the main loop, which live throughout.
    vcpus = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read()
        except OSError:
            continue
        if name.startswith("CPU "):
            vcpus += cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
    main_loop = cpu_seconds(f"/proc/{pid}/task/{pid}/stat")
    kinds = {
        "vCPU": vcpus,
        "main loop": main_loop,
        "other threads": cpu_seconds(f"/proc/{pid}/stat") - vcpus - main_loop,
    }
    others = 0.0
    for other in os.listdir("/proc"):
        if other.isdigit() and other != str(pid):
            try:
                exe = os.readlink(f"/proc/{other}/exe")
            except OSError:
                continue
            if os.path.basename(exe).startswith("qemu-system"):
                others += cpu_seconds(f"/proc/{other}/stat")
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return {
        "wall": time.time(),
        "kinds": kinds,
        "others": others,
        "host_busy": (sum(fields[:8]) - fields[3] - fields[4]) / TICK,
        # Time the host's own hypervisor ran something else on its cores, where it says so.
        "host_steal": fields[7] / TICK,
    }


def main():
    verb, path, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if verb == "mark":
        with open(path, "w") as f:
            json.dump(snapshot(pid), f)
        return
    a, b = json.load(open(path)), snapshot(pid)
    wall = b["wall"] - a["wall"] or 1
    pct = lambda seconds: f"{100 * seconds / wall:.0f}%"
    kinds = ", ".join(f"{kind} {pct(seconds - a['kinds'][kind])}" for kind, seconds in b["kinds"].items())
    print(
        f"{wall:.0f} s on the host (share of a core): this QEMU's {kinds}; other QEMUs "
        f"{pct(b['others'] - a['others'])}; host busy {pct(b['host_busy'] - a['host_busy'])} "
        f"of {os.cpu_count()} cores, stolen from the host {pct(b['host_steal'] - a['host_steal'])}"
    )


main()
