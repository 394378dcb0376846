#!/usr/bin/env python3
"""qmp-throttle.py SOCKET BPS: sets the guest disk's QEMU throttle (read + write bytes per
second; 0 lifts it) through the QMP socket of a running VM, as a cloud provider's volume limit
changes under a guest that cannot see it. Prints the limit QEMU reports afterwards."""
import json, socket, sys

sock, bps = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sock)
f = s.makefile("rw")


def reply():
    while True:
        msg = json.loads(f.readline())
        if "event" not in msg:
            if "error" in msg:
                sys.exit(f"qmp: {msg['error'].get('desc', msg)}")
            return msg.get("return")


def call(cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args} if args else {"execute": cmd}) + "\n")
    f.flush()
    return reply()


reply()  # greeting
call("qmp_capabilities")
limits = {k: 0 for k in ("bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr")}
limits["bps"] = bps
call("block_set_io_throttle", device="disk0", **limits)
disk = next(b for b in call("query-block") if b["device"] == "disk0")
print(disk["inserted"].get("bps", 0))
