#!/usr/bin/env python3
"""vm-dstate.py SECONDS STOP OUT [UID]: every 0.2 s until SECONDS pass or the file STOP
exists, the processes in uninterruptible sleep (D) and the kernel function each waits in
(wchan); writes to OUT the six most seen as "comm@wchan:samples" (UID's prefixed "user:")
and the number of passes. Says what an IO storm makes everyone else wait for."""
import collections, os, sys, time

secs, stop, out = float(sys.argv[1]), sys.argv[2], sys.argv[3]
user = int(sys.argv[4]) if len(sys.argv) > 4 else None
seen, passes = collections.Counter(), 0
end = time.time() + secs
while time.time() < end and not os.path.exists(stop):
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
            if stat.rsplit(")", 1)[1].split()[0] != "D":
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            wchan = open(f"/proc/{pid}/wchan").read().strip() or "?"
            owner = os.stat(f"/proc/{pid}").st_uid
        except (OSError, IndexError, ValueError):
            continue
        seen[("user:" if owner == user else "") + f"{comm}@{wchan}"] += 1
    passes += 1
    time.sleep(0.2)
with open(out + ".tmp", "w") as f:
    top = " ".join(f"{k}:{n}" for k, n in seen.most_common(6))
    f.write(f"{passes} {top}\n")
os.rename(out + ".tmp", out)
