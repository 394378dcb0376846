#!/usr/bin/python3
"""A runaway: grows by STEP_MIB every INTERVAL_MS up to LIMIT_MIB, then keeps it."""
import sys
import time

step, interval, limit = int(sys.argv[1]), int(sys.argv[2]) / 1000, int(sys.argv[3])
held = []
while len(held) * step < limit:
    held.append(b"\x01" * (step << 20))  # written, so resident
    time.sleep(interval)
while True:
    time.sleep(1)
