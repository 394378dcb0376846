#!/usr/bin/env python3
"""The IO benchmark's table: io-table.py OUTDIR PHASE... (the first phase is the idle one).

Medians of root's fresh ssh logins and of the 8 MB O_DIRECT read from system.slice, each
also as a multiple of the idle median, and alice's write throughput (storm) or read
throughput (thrash) as a share of the throttled disk. Exit 1 if a phase has no figures."""
import statistics
import sys


def read(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                out[k] = v
    except FileNotFoundError:
        pass
    return out


def median(text):
    vals = [int(v) for v in text.split() if v.isdigit()]
    fails = sum(1 for v in text.split() if not v.isdigit())
    return (statistics.median(vals) if vals else None), len(vals), fails


def main():
    out, phases = sys.argv[1], sys.argv[2:]
    setup = read(f"{out}/setup")
    disk = int(setup.get("disk_bps", "0")) / 1e6
    mb = int(setup.get("mb", "0"))
    print(f"disk throttled to {disk:.1f} MB/s; scheduler {setup.get('scheduler')}; "
          f"contain: {setup.get('installed')}; io.cost.qos: {setup.get('iocost') or '-'}")
    thrash = f"; thrash: re-reading {setup['thrash']}" if "thrash" in setup else ""
    print(f"| phase | root's ssh login, median (n) | x idle | 8 MB direct read, median (n) | x idle | alice (storm: 3 x {mb} MB{thrash}) |")
    print("|---|---|---|---|---|---|")
    rc = 0
    idle_login = idle_probe = None
    for i, p in enumerate(phases):
        f = read(f"{out}/{p}")
        if f.get("skipped"):
            print(f"| {p} | not available | | | | |")
            continue
        login, nl, fl = median(f.get("logins", ""))
        probe, np_, fp = median(f.get("probes", ""))
        if login is None or probe is None:
            print(f"| {p} | no figures | | | | |")
            rc = 1
            continue
        if i == 0:
            idle_login, idle_probe = login, probe
        storm = f.get("storm_s")
        if "alice" in f:
            alice = f["alice"]
        elif storm is None:
            alice = ""
        elif storm == "unfinished":
            alice = "unfinished"
        else:
            mbs = 3 * mb * 1048576 / float(storm) / 1e6
            alice = f"{float(storm):.0f} s, {mbs:.1f} MB/s ({100 * mbs / disk:.0f}% of the disk)"
        lx = f"{login / idle_login:.2f}" if idle_login else ""
        px = f"{probe / idle_probe:.2f}" if idle_probe else ""
        lf = f", {fl} failed" if fl else ""
        pf = f", {fp} failed" if fp else ""
        print(f"| {p} | {login / 1000:.2f} s ({nl}{lf}) | {lx} | {probe / 1000:.2f} s ({np_}{pf}) | {px} | {alice} |")
    return rc


if __name__ == "__main__":
    sys.exit(main())
