#!/usr/bin/env python3
"""vm-tty-watch.py KEY USER SECONDS OUT: holds an ssh login of USER with a terminal (a pty of
its own, so a logind session with a TTY and a utmp entry), and writes to OUT the wall-clock
time the first line starting "contain:" arrived on it, and that line. OUT gets "None" if
nothing came within SECONDS."""
import os, pty, select, signal, sys, time

key, user, secs, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("ssh", ["ssh", "-tt", "-i", key, "-o", "StrictHostKeyChecking=no",
                      "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                      "-o", "BatchMode=yes", f"{user}@127.0.0.1", f"sleep {int(secs) + 5}"])
buf, seen, end = b"", None, time.time() + secs
while time.time() < end and seen is None:
    r, _, _ = select.select([fd], [], [], 0.5)
    if not r:
        continue
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    now = time.time()
    buf += chunk
    for line in buf.replace(b"\r", b"").split(b"\n"):
        if line.startswith(b"contain:"):
            seen = (now, line.decode("utf-8", "replace"))
            break
os.kill(pid, signal.SIGTERM)
os.waitpid(pid, 0)
with open(out + ".tmp", "w") as f:
    f.write(f"{seen[0]} {seen[1]}\n" if seen else "None\n")
with open(out + ".log", "wb") as f:
    f.write(buf[-2000:])
os.rename(out + ".tmp", out)
