#!/usr/bin/python3
"""A neighbour's latency probe: sleeps 10 ms in a loop and records how late it wakes.
Runs until STOPFILE exists or SECONDS pass, then writes "n p50 p99 max" (ms) to OUT.
Only python3-minimal modules: the test image has no json."""
import os
import sys
import time

seconds, out, stopfile = float(sys.argv[1]), sys.argv[2], sys.argv[3]
late = []
end = time.monotonic() + seconds
while time.monotonic() < end and not os.path.exists(stopfile):
    t = time.monotonic()
    time.sleep(0.01)
    late.append((time.monotonic() - t - 0.01) * 1000)
late.sort()
pick = lambda q: round(late[min(len(late) - 1, int(q * len(late)))], 1) if late else None
with open(out + ".tmp", "w") as f:
    f.write(f"{len(late)} {pick(0.5)} {pick(0.99)} {pick(1.0)}\n")
os.rename(out + ".tmp", out)
