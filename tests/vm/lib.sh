# shellcheck shell=bash
# Helpers for tests/vm/run.sh, the checks in tests/vm/checks/ and the benchmarks in
# tests/vm/bench/. Environment set by start_vm: VM_PORT VM_KEY VM_RUN_DIR VM_SERIAL VM_SUITE
# VM_QEMU_PID; by the caller: VM_RESULTS, VM_POLICY (host path of the test policy) and
# VM_HERE (tests/vm directory).

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
ssh_root() { ssh_root_within 0 "$@"; }
# ssh_root_within SECONDS CMD...: ssh_root, given up after SECONDS (0: never); a thrashing
# guest may not answer for minutes.
ssh_root_within() {
    local secs=$1
    shift
    local cmd=(ssh "${VM_SSH_OPTS[@]}" -o ControlMaster=auto -o "ControlPath=$VM_RUN_DIR/ctl-root"
        -o ControlPersist=120 -i "$VM_KEY" -p "$VM_PORT" root@127.0.0.1 "$@")
    if [ "$secs" = 0 ]; then "${cmd[@]}" </dev/null; else timeout "$secs" "${cmd[@]}" </dev/null; fi
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

VM_BOOT_MASKS="systemd.mask=modprobe@drm.service systemd.mask=modprobe@efi_pstore.service systemd.mask=modprobe@fuse.service systemd.mask=modprobe@configfs.service"

# Under TCG a boot takes 45-90 s, a reboot with a shutdown that waits for stop jobs and a
# busy host several minutes: the limit is generous on purpose.
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-900}

# wait_boot_done: ssh answers and systemd has finished starting up, without a fault of the
# kind that would make a later check pass or fail by chance (boot_faults): those are printed
# and fail the boot.
wait_boot_done() {
    wait_until "$VM_BOOT_TIMEOUT" ssh_ready || return 1
    wait_until 180 ssh_root 'systemctl is-system-running --wait >/dev/null; s=$(systemctl is-system-running); [ "$s" = running ] || [ "$s" = degraded ]' || return 1
    local faults
    faults=$(boot_faults)
    [ -z "$faults" ] || { echo "fault in this boot: $faults" >&2; return 1; }
}

# boot_faults: one line per fault of this boot. An ordering cycle makes systemd drop one of
# its jobs, a different one from boot to boot; without the image's swapfile, a check that
# counts pages swapped out proves nothing, and 06's runaway has nowhere to thrash.
boot_faults() {
    ssh_root 'journalctl -b -o cat --no-pager | grep -m3 "to break ordering cycle";
        swapon --show=NAME --noheadings | grep -qx /swapfile || echo "no /swapfile in use as swap"' || true
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
# [[override]] entries are addressed as override.USER.KEY, group ones as override.@GROUP.KEY.
policy_get() {
    python3 - "$VM_POLICY" "$1" "${2-}" <<'PY'
import sys, tomllib
path, key, default = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "rb") as f:
    pol = tomllib.load(f)
parts = key.split(".")
if parts[0] == "override":
    sel = ("group", parts[1][1:]) if parts[1].startswith("@") else ("user", parts[1])
    node = next((o for o in pol.get("override", []) if o.get(sel[0]) == sel[1]), {})
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

# check_begin NAME: a check's name and its empty errs and figs arrays (finish reports them).
check_begin() {
    name=$1
    errs=()
    figs=()
}

# alice_slice: uid and slice (cgroup path) of alice, the checks' runaway user.
# shellcheck disable=SC2034 # uid and slice are the calling check's
alice_slice() {
    uid=$(ssh_root 'id -u alice')
    slice=/user.slice/user-$uid.slice
}

# finish NAME: one result line from the caller's errs and figs arrays; on a failure the
# figures gathered so far are printed first.
# shellcheck disable=SC2154 # errs and figs belong to the calling check
finish() {
    local IFS=
    if ((${#errs[@]})); then
        ((${#figs[@]} == 0)) || echo "figures: $(printf '%s, ' "${figs[@]}" | sed 's/, $//')"
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

# bob_probe_end [IDLE_FILE]: stops bob's latency probe (tools/vm-probe.py writing
# /tmp/bob-probe.txt) and judges it: its p99 and max as figures (beside IDLE_FILE's, an idle
# run's), a stall of 2 s or more or a dead probe as an error.
bob_probe_end() {
    local p99 pmax i99 imax idle=
    ssh_root 'touch /tmp/bob-probe.stop'
    if ! wait_until 30 ssh_root 'test -s /tmp/bob-probe.txt'; then
        errs+=("bob's probe died")
        return
    fi
    read -r _ _ p99 pmax <<<"$(ssh_root 'cat /tmp/bob-probe.txt')"
    if [ -n "${1:-}" ]; then
        read -r _ _ i99 imax <<<"$(ssh_root "cat $1" || echo '- - ? ?')"
        idle=" (idle p99 ${i99} ms max ${imax} ms)"
    fi
    figs+=("bob probe p99 ${p99} ms max ${pmax} ms$idle")
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 2000 else 1)" "$pmax" ||
        errs+=("bob's probe stalled ${pmax} ms")
}

# memevent CGROUP KEY: one counter from a cgroup's memory.events (0 if absent).
memevent() { ssh_root "awk '\$1==\"$2\" {print \$2}' /sys/fs/cgroup$1/memory.events 2>/dev/null" || echo 0; }

# ---- The VM itself: run.sh and tests/vm/bench/ boot, install and stop it with these. ----

VM_HERE=${VM_HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
VM_POLICY=${VM_POLICY:-$VM_HERE/policy.toml}
VM_CACHE_ROOT=${CONTAIN_VM_CACHE:-/var/tmp/contain-vm}

# find_deb: CONTAIN_DEB (another package file, e.g. one built in a scratch tree), else the
# newest target/debian/contain_*.deb; prints nothing if there is none.
find_deb() {
    if [ -n "${CONTAIN_DEB:-}" ]; then
        echo "$CONTAIN_DEB"
        return
    fi
    find "$(cd "$VM_HERE/../.." && pwd)/target/debian" -maxdepth 1 -name 'contain_*.deb' -printf '%T@ %p\n' 2>/dev/null |
        sort -rn | head -n1 | cut -d' ' -f2-
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# KVM only if a trial boot of the real kernel actually gets somewhere under it.
VM_ACCEL=
probe_accel() {
    local img=$1 log
    if [ -n "$VM_ACCEL" ]; then return; fi
    VM_ACCEL="-accel tcg -cpu max"
    [ -w /dev/kvm ] || return 0
    # The verdict holds for this host kernel and QEMU: probe once, not per run.
    local key cache="$VM_CACHE_ROOT/accel"
    key="$(uname -r) $(qemu-system-x86_64 --version | head -n1)"
    if [ -f "$cache" ] && [ "$(head -n1 "$cache")" = "$key" ]; then
        VM_ACCEL=$(sed -n 2p "$cache")
        return 0
    fi
    log=$(mktemp)
    timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 256 -machine q35 -no-reboot \
        -kernel "$img/vmlinuz" -append 'console=ttyS0 panic=-1' \
        -display none -serial "file:$log" >/dev/null 2>&1 || true
    if grep -q 'Kernel panic' "$log"; then VM_ACCEL="-accel kvm -cpu host"; fi
    rm -f "$log"
    printf '%s\n%s\n' "$key" "$VM_ACCEL" >"$cache"
}

# start_vm SUITE: a fresh overlay of SUITE's cached image booted under QEMU (2 vCPU,
# 2 GiB), up to ssh and a finished boot. VM_DISK_THROTTLE_BPS (bytes/s, read + write) caps
# the disk in QEMU from boot, unseen by the guest, as a cloud provider's volume limit is
# (vm_disk_throttle changes it later). Sets and exports VM_SUITE VM_RUN_DIR VM_SERIAL
# VM_KEY VM_PORT VM_QEMU_PID. Returns 2 if there is no image, 1 if the guest does not
# come up within VM_BOOT_TIMEOUT (QEMU is left running for dump_guest).
start_vm() {
    local img d
    VM_SUITE=$1
    mkdir -p "$VM_CACHE_ROOT"
    img=$("$VM_HERE/image.sh" "$VM_SUITE") || return 2
    probe_accel "$img"
    # Others may be running VMs from the same cache: remove only runs whose QEMU is gone (two
    # suites starting together may race to remove the same one).
    for d in "$VM_CACHE_ROOT"/run-*; do
        [ -d "$d" ] || continue
        if [ -f "$d/qemu.pid" ] && kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null; then continue; fi
        [ -n "$(find "$d" -maxdepth 0 -mmin +5 2>/dev/null)" ] && rm -rf "$d"
    done
    VM_RUN_DIR=$(mktemp -d "$VM_CACHE_ROOT/run-$VM_SUITE-XXXXXX") || return 2
    VM_SERIAL=$VM_RUN_DIR/serial.log
    VM_KEY=$VM_RUN_DIR/id_test
    VM_PORT=$(free_port)
    export VM_SUITE VM_RUN_DIR VM_SERIAL VM_KEY VM_PORT
    install -m 0600 "$img/id_test" "$VM_KEY" || return 2
    qemu-img create -q -f qcow2 -b "$img/base.qcow2" -F qcow2 "$VM_RUN_DIR/run.qcow2" || return 2

    # panic=10: under TCG a guest kernel has been seen to oops while patching its own code
    # early in boot; it reboots (QEMU resets) instead of halting until a timeout.
    # apparmor=0 and the masked module loaders: emulated, loading AppArmor's profiles took
    # 66-69 s of every boot and those modules (graphics, pstore, fuse, configfs) 10-37 s
    # each; contain touches none of them (docker runs unconfined without AppArmor).
    # shellcheck disable=SC2086 # VM_ACCEL holds several words on purpose
    qemu-system-x86_64 $VM_ACCEL -name "$VM_SUITE,debug-threads=on" -machine q35 -m 2G -smp "${VM_SMP:-2}" \
        -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0 panic=10 apparmor=0 $VM_BOOT_MASKS" \
        -drive "file=$VM_RUN_DIR/run.qcow2,if=virtio,id=disk0,format=qcow2,cache=unsafe${VM_DISK_THROTTLE_BPS:+,throttling.bps-total=$VM_DISK_THROTTLE_BPS}" \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
        -device virtio-net-pci,netdev=n0 -display none -serial "file:$VM_SERIAL" \
        -monitor none -qmp "unix:$VM_RUN_DIR/qmp.sock,server=on,wait=off" \
        -pidfile "$VM_RUN_DIR/qemu.pid" &
    VM_QEMU_PID=$!
    export VM_QEMU_PID
    wait_boot_done
}

# install_deb DEB: installed the way an admin would (the package file, apt resolves the
# rest), the test policy in place, then a reboot. apt's output is in $VM_RUN_DIR/install.log.
install_deb() {
    local name
    name=$(basename "$1")
    copy_in "$1" "/root/$name" &&
        ssh_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/$name" >"$VM_RUN_DIR/install.log" 2>&1 &&
        copy_in "$VM_POLICY" /etc/contain/policy.toml &&
        reboot_and_wait
}

# ansible_playbook ARGS...: examples/ansible/site.yml against the guest over its ssh port and
# key, as root; output appended to $VM_RUN_DIR/ansible.log.
ansible_playbook() {
    local inv=$VM_RUN_DIR/ansible-inventory.ini
    printf '[contain]\nvm ansible_host=127.0.0.1 ansible_port=%s ansible_user=root ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3\n' \
        "$VM_PORT" "$VM_KEY" >"$inv"
    ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_NOCOLOR=1 \
        ANSIBLE_PIPELINING=True ANSIBLE_LOCAL_TEMP="$VM_RUN_DIR/ansible-tmp" \
        ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o ServerAliveInterval=10" \
        ANSIBLE_TIMEOUT=60 \
        ansible-playbook -i "$inv" "$VM_HERE/../../examples/ansible/site.yml" "$@" >>"$VM_RUN_DIR/ansible.log" 2>&1
}

# install_with_ansible DEB: as install_deb, but through the Ansible role (examples/ansible/):
# the package copied from the host, the test policy through `containctl validate`, then a reboot.
install_with_ansible() {
    : >"$VM_RUN_DIR/ansible.log"
    ansible_playbook -e "contain_deb=$(realpath "$1")" -e "contain_policy_template=$VM_POLICY" &&
        reboot_and_wait
}

# io_login_ms: one fresh root ssh login timed from the host, in ms ("fail" after 120 s).
io_login_ms() {
    local s
    s=$(date +%s%N)
    if ssh_within 120 root true; then echo $((($(date +%s%N) - s) / 1000000)); else echo fail; fi
}
# io_probe_ms: 8 MB read with O_DIRECT from /var/tmp/io-probe by a transient unit in
# system.slice; dd's own time in ms.
io_probe_ms() {
    ssh_root_within 120 "systemd-run --wait --pipe --quiet -p Slice=system.slice \
        dd if=/var/tmp/io-probe of=/dev/null bs=1M iflag=direct 2>&1 >/dev/null |
        awk '/copied/ {for (i = 1; i <= NF; i++) if (\$i ~ /^s,?\$/) {print int(\$(i-1) * 1000); exit}}'" ||
        echo fail
}
# median: the median of the whole numbers among its input's words ("none" if there are none).
median() { tr ' ' '\n' | grep -E '^[0-9]+$' | sort -n | awk '{a[NR] = $1} END {if (NR) print a[int((NR + 1) / 2)]; else print "none"}'; }

# vm_disk_throttle BPS: caps the running guest's disk at BPS bytes/s (read + write; 0 lifts
# the cap) in QEMU, unseen by the guest; prints the limit QEMU then reports.
vm_disk_throttle() {
    python3 "$VM_HERE/tools/qmp-throttle.py" "$VM_RUN_DIR/qmp.sock" "$1"
}

dump_guest() {
    echo "----- guest journal (tail) -----"
    ssh_root 'journalctl -b --no-pager | tail -n 80' 2>&1 || echo "(guest unreachable)"
    echo "----- serial log (tail) -----"
    tail -n 40 "$VM_SERIAL" 2>/dev/null | tr -d '\r' || true
    echo "--------------------------------"
}

# stop_vm: power the guest off (QEMU killed after 120 s if it does not go).
stop_vm() {
    [ -n "${VM_QEMU_PID:-}" ] || return 0
    if kill -0 "$VM_QEMU_PID" 2>/dev/null; then
        ssh_root 'systemctl poweroff' >/dev/null 2>&1 || true
        local end=$((SECONDS + 120))
        while kill -0 "$VM_QEMU_PID" 2>/dev/null && ((SECONDS < end)); do sleep 1; done
        kill "$VM_QEMU_PID" 2>/dev/null || true
    fi
    wait "$VM_QEMU_PID" 2>/dev/null || true
    VM_QEMU_PID=
}
