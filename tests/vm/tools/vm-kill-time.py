#!/usr/bin/env python3
"""vm-kill-time.py COMM: the wall-clock time the kernel killed the last process named COMM
(its "Killed process PID (COMM)" record in /dev/kmsg), and the error bound, in seconds.

The kernel stamps its records with its own clock: a mark written to /dev/kmsg between two
readings of the wall clock ties that clock to the wall clock here, so the kill's time needs
no process to have been awake at the moment of the kill."""
import errno, os, sys, time

comm = sys.argv[1]
mark = f"vm-kill-time: mark {os.getpid()}"
fd = os.open("/dev/kmsg", os.O_WRONLY)
before = time.time()
os.write(fd, f"{mark}\n".encode())
after = time.time()
os.close(fd)

kill_us = mark_us = None
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
while True:
    try:
        rec = os.read(fd, 8192).decode("utf-8", "replace")
    except OSError as e:
        if e.errno == errno.EPIPE:  # records overwritten meanwhile: read on
            continue
        break
    head, _, text = rec.partition(";")
    us = int(head.split(",")[2])
    if "Killed process " in text and f"({comm})" in text:
        kill_us = us
    elif text.rstrip("\n") == mark:
        mark_us = us
        break
os.close(fd)
if kill_us is None or mark_us is None:
    print("None")
else:
    print(f"{before + (kill_us - mark_us) / 1e6:.6f} {after - before:.6f}")
