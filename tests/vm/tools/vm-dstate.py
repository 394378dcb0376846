#!/usr/bin/env python3
"""vm-dstate.py SECONDS STOP OUT [UID]: every 0.5 s until SECONDS pass or the file STOP
exists, the processes in uninterruptible sleep (D) and the kernel function each waits in
(wchan); writes to OUT the six most seen as "comm@wchan:samples" (UID's prefixed "user:")
and the number of passes. Says what an IO storm makes everyone else wait for. Raw reads of
/proc: a pass through open() cost the emulated guest 0.14 s of CPU."""
import collections, os, sys, time

secs, stop, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
user = int(sys.argv[4]) if len(sys.argv) > 4 else None


def read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1024)
    finally:
        os.close(fd)


seen, passes = collections.Counter(), 0
end = time.time() + secs
while time.time() < end and not os.path.exists(stop):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = read(f"/proc/{pid}/stat")
            close = stat.rindex(b")")
            if stat[close + 2:close + 3] != b"D":
                continue
            comm = stat[stat.index(b"(") + 1:close].decode(errors="replace")
            wchan = read(f"/proc/{pid}/wchan").decode().strip() or "?"
            owner = os.stat(f"/proc/{pid}").st_uid
        except (OSError, ValueError):
            continue
        seen[("user:" if owner == user else "") + f"{comm}@{wchan}"] += 1
    passes += 1
    time.sleep(0.5)
with open(out + ".tmp", "w") as f:
    top = " ".join(f"{k}:{n}" for k, n in seen.most_common(6))
    f.write(f"{passes} {top}\n")
os.rename(out + ".tmp", out)
