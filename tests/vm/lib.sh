# shellcheck shell=bash
# Helpers for tests/vm/run.sh and the checks in tests/vm/checks/.
# Environment set by run.sh: VM_PORT VM_KEY VM_RUN_DIR VM_SERIAL VM_RESULTS VM_SUITE
# VM_POLICY (host path of the test policy) VM_HERE (tests/vm directory).

VM_SSH_OPTS=(-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
    -o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=15
    -o ServerAliveInterval=10 -o ServerAliveCountMax=6)

# ssh_as USER CMD...: run CMD in the guest over a real ssh login of USER.
ssh_as() {
    local user=$1
    shift
    ssh "${VM_SSH_OPTS[@]}" -i "$VM_KEY" -p "$VM_PORT" "$user@127.0.0.1" "$@" </dev/null
}
# Root's commands share one connection (a fresh login costs seconds under TCG);
# every other user's command is a real login of its own.
ssh_root() {
    ssh "${VM_SSH_OPTS[@]}" -o ControlMaster=auto -o "ControlPath=$VM_RUN_DIR/ctl-root" \
        -o ControlPersist=120 -i "$VM_KEY" -p "$VM_PORT" root@127.0.0.1 "$@" </dev/null
}
# ssh_root_login CMD...: a real, fresh root login.
ssh_root_login() { ssh_as root "$@"; }

# ssh_within SECONDS USER CMD...: ssh_as, given up after SECONDS.
ssh_within() {
    local secs=$1 user=$2
    shift 2
    timeout "$secs" ssh "${VM_SSH_OPTS[@]}" -i "$VM_KEY" -p "$VM_PORT" "$user@127.0.0.1" "$@" </dev/null
}

# copy_in LOCAL REMOTE: copy a file into the guest as root.
copy_in() {
    scp -q "${VM_SSH_OPTS[@]}" -i "$VM_KEY" -P "$VM_PORT" "$1" "root@127.0.0.1:$2"
}

# wait_until TIMEOUT CMD...: poll CMD (once a second) until it succeeds; 1 on timeout.
wait_until() {
    local timeout=$1
    shift
    local end=$((SECONDS + timeout))
    while ((SECONDS < end)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    "$@" >/dev/null 2>&1
}

vm_alive() { [ -z "${VM_QEMU_PID:-}" ] || kill -0 "$VM_QEMU_PID" 2>/dev/null; }
ssh_ready() { vm_alive && ssh_root true; }

# boot_id: the guest's current boot id (empty if unreachable).
boot_id() { ssh_root cat /proc/sys/kernel/random/boot_id 2>/dev/null || true; }

# Under TCG a boot takes 45-90 s, a reboot with a shutdown that waits for stop jobs and a
# busy host several minutes: the limit is generous on purpose.
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-600}

# wait_boot_done: ssh answers and systemd has finished starting up.
wait_boot_done() {
    wait_until "$VM_BOOT_TIMEOUT" ssh_ready || return 1
    wait_until 180 ssh_root 'systemctl is-system-running --wait >/dev/null; s=$(systemctl is-system-running); [ "$s" = running ] || [ "$s" = degraded ]'
}

# reboot_and_wait: reboot the guest, wait until a NEW boot answers ssh.
reboot_and_wait() {
    local old new
    old=$(boot_id)
    ssh_root 'systemctl reboot' >/dev/null 2>&1 || true
    local end=$((SECONDS + VM_BOOT_TIMEOUT))
    while ((SECONDS < end)); do
        vm_alive || { echo "reboot_and_wait: qemu exited" >&2; return 1; }
        new=$(boot_id)
        if [ -n "$new" ] && [ "$new" != "$old" ]; then
            wait_boot_done
            return
        fi
        sleep 2
    done
    echo "reboot_and_wait: no new boot within ${VM_BOOT_TIMEOUT}s" >&2
    return 1
}

# pass NAME [FIGURE] / fail NAME REASON: one result line, recorded for the summary.
pass() {
    local line="PASS ${VM_SUITE:+$VM_SUITE/}$1${2:+ ($2)}"
    echo "$line"
    echo "$line" >>"$VM_RESULTS"
}
fail() {
    local line="FAIL ${VM_SUITE:+$VM_SUITE/}$1: ${2:-failed}"
    echo "$line"
    echo "$line" >>"$VM_RESULTS"
}

# policy_get TABLE.KEY [DEFAULT]: a value from the test policy, sizes as bytes.
# [[override]] entries are addressed as override.USER.KEY.
policy_get() {
    python3 - "$VM_POLICY" "$1" "${2-}" <<'PY'
import sys, tomllib
path, key, default = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "rb") as f:
    pol = tomllib.load(f)
parts = key.split(".")
if parts[0] == "override":
    node = next((o for o in pol.get("override", []) if o.get("user") == parts[1]), {})
    parts = parts[2:]
else:
    node = pol
for p in parts:
    node = node.get(p, {}) if isinstance(node, dict) else {}
if node == {} or node is None:
    print(default)
    sys.exit(0)
def size(v):
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if s == "infinity":
        return "max"
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s[-1:].upper() in units:
        return str(int(float(s[:-1]) * units[s[-1].upper()]))
    return s
print(size(node))
PY
}

# user_limit USER KEY: the effective policy value for USER (override, else [users]).
user_limit() {
    local v
    v=$(policy_get "override.$1.$2")
    [ -n "$v" ] || v=$(policy_get "users.$2")
    echo "$v"
}

# cg_read CGROUP_PATH FILE: read a cgroupfs file in the guest.
cg_read() { ssh_root "cat '/sys/fs/cgroup$1/$2'"; }

# pswpout: the guest's pages swapped out since boot.
pswpout() { ssh_root "awk '/^pswpout/ {print \$2}' /proc/vmstat"; }

# mib BYTES: "700M" for display ("max" and non-numbers pass through).
mib() {
    case "$1" in
    '' | *[!0-9]*) echo "$1" ;;
    *) echo "$(($1 / 1048576))M" ;;
    esac
}

# guest_now: the guest's clock, seconds with fractions (for timings read from its journal).
guest_now() { ssh_root 'date +%s.%N'; }

# finish NAME: one result line from the caller's errs and figs arrays.
# shellcheck disable=SC2154 # errs and figs belong to the calling check
finish() {
    local IFS=
    if ((${#errs[@]})); then
        fail "$1" "$(printf '%s; ' "${errs[@]}" | sed 's/; $//')"
    else
        pass "$1" "$(printf '%s, ' "${figs[@]}" | sed 's/, $//')"
    fi
}

# install_tools: the runaway and the latency probe, into the guest's /usr/local/bin.
install_tools() {
    local t
    for t in vm-grow.py vm-probe.py; do
        copy_in "$VM_HERE/tools/$t" "/usr/local/bin/$t" || return 1
    done
    ssh_root 'chmod 755 /usr/local/bin/vm-grow.py /usr/local/bin/vm-probe.py'
}

# memevent CGROUP KEY: one counter from a cgroup's memory.events (0 if absent).
memevent() { ssh_root "awk '\$1==\"$2\" {print \$2}' /sys/fs/cgroup$1/memory.events 2>/dev/null" || echo 0; }
