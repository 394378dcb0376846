#!/usr/bin/env python3
"""vm-tty-watch.py KEY USER SECONDS OUT: holds two terminals of USER and writes to OUT, for
each, the wall-clock time the first line starting "contain:" arrived on it, and that line
("NAME None" if nothing came within SECONDS):
- "ssh": an ssh login with a terminal (sshd's pty, a logind session, a utmp entry on
  bookworm); the line reaches this end only after her sshd has relayed it;
- "local": a pty held here, owned by USER with mode 0620 as login and sshd leave theirs,
  running `su - USER`'s shell (su -c would start a new session without the terminal): the
  line is read the moment it is on her terminal."""
import grp, os, pty, pwd, select, signal, sys, time

key, user, secs, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
hold = f"sleep {int(secs) + 5}"


def spawn(argv, owner=None):
    pid, fd = pty.fork()
    if pid == 0:
        if owner is not None:
            os.fchown(0, owner, grp.getgrnam("tty").gr_gid)
            os.fchmod(0, 0o620)
        os.execvp(argv[0], argv)
    return pid, fd


terms = {
    "ssh": spawn(["ssh", "-tt", "-i", key, "-o", "StrictHostKeyChecking=no",
                  "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                  "-o", "BatchMode=yes", f"{user}@127.0.0.1", hold]),
    "local": spawn(["su", "-", user], owner=pwd.getpwnam(user).pw_uid),
}
bufs = {name: b"" for name in terms}
# The local shell's prompt first, then the command that holds it.
local_fd, ready = terms["local"][1], time.time() + 60
while time.time() < ready and not bufs["local"].rstrip().endswith((b"$", b"#")):
    if select.select([local_fd], [], [], 0.5)[0]:
        try:
            bufs["local"] += os.read(local_fd, 4096)
        except OSError:
            break
os.write(local_fd, f"exec {hold}\n".encode())
# What came before is the login's own output (pam_contain's notice of an earlier kill is a
# "contain:" line too): only what comes after counts.
early, bufs["local"] = bufs["local"], b""
seen = {}
end = time.time() + secs
while time.time() < end and len(seen) < len(terms):
    waiting = {fd: name for name, (_, fd) in terms.items() if name not in seen}
    r, _, _ = select.select(list(waiting), [], [], 0.5)
    for fd in r:
        name = waiting[fd]
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        now = time.time()
        if not chunk:
            seen[name] = None
            continue
        bufs[name] += chunk
        for line in bufs[name].replace(b"\r", b"").split(b"\n"):
            if line.startswith(b"contain:"):
                seen[name] = (now, line.decode("utf-8", "replace"))
                break
for pid, _ in terms.values():
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
with open(out + ".tmp", "w") as f:
    for name in terms:
        got = seen.get(name)
        f.write(f"{name} {got[0]} {got[1]}\n" if got else f"{name} None\n")
with open(out + ".log", "wb") as f:
    for name in terms:
        f.write(f"--- {name}\n".encode() + (early[-600:] + b"\n--- armed\n" if name == "local" else b"")
                + bufs[name][-1000:] + b"\n")
os.rename(out + ".tmp", out)
