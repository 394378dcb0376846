#!/usr/bin/python3
"""A runaway: grows by STEP_MIB every INTERVAL_MS up to LIMIT_MIB, then keeps it.
With --touch it keeps reading all of it, a page at a time, like a tool re-scanning its
buffers: a working set, which thrashes where it does not fit."""
import sys
import time

step, interval, limit = int(sys.argv[1]), int(sys.argv[2]) / 1000, int(sys.argv[3])
touch = "--touch" in sys.argv[4:]
held = []
while len(held) * step < limit:
    held.append(b"\x01" * (step << 20))  # written, so resident
    time.sleep(interval)
while not touch:
    time.sleep(1)
total = 0
while True:
    for chunk in held:
        total += sum(chunk[i] for i in range(0, len(chunk), 4096))
