#!/usr/bin/env bash
# The VM proof: boots a Debian VM per suite, installs the freshly built .deb the way
# an admin would, reboots, runs tests/vm/checks/*.sh in order, powers off.
#   tests/vm/run.sh [--demo] SUITE...      (SUITE = bookworm | trixie)
# Prints one PASS/FAIL line per check and a final "N passed, M failed" line.
# VM_CHECKS="01 05" runs only the checks whose names start with those prefixes.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE_ROOT=${CONTAIN_VM_CACHE:-/var/tmp/contain-vm}
CHECK_DIR="$HERE/checks"
if [ "${1:-}" = --demo ]; then
    CHECK_DIR="$HERE/demo"
    shift
fi
SUITES=("$@")
((${#SUITES[@]})) || SUITES=(bookworm trixie)

# shellcheck source=lib.sh
. "$HERE/lib.sh"

export VM_HERE=$HERE VM_POLICY=$HERE/policy.toml

# CONTAIN_DEB names another package file (e.g. one built in a scratch tree).
deb=${CONTAIN_DEB:-}
[ -n "$deb" ] || deb=$(find "$REPO/target/debian" -maxdepth 1 -name 'contain_*.deb' -printf '%T@ %p\n' 2>/dev/null |
    sort -rn | head -n1 | cut -d' ' -f2-)
if [ -z "$deb" ]; then
    echo "run.sh: no target/debian/contain_*.deb (run make deb first)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# KVM only if a trial boot of the real kernel actually gets somewhere under it.
ACCEL=
probe_accel() {
    local img=$1 log
    if [ -n "$ACCEL" ]; then return; fi
    ACCEL="-accel tcg -cpu max"
    [ -w /dev/kvm ] || return 0
    # The verdict holds for this host kernel and QEMU: probe once, not per run.
    local key cache="$CACHE_ROOT/accel"
    key="$(uname -r) $(qemu-system-x86_64 --version | head -n1)"
    if [ -f "$cache" ] && [ "$(head -n1 "$cache")" = "$key" ]; then
        ACCEL=$(sed -n 2p "$cache")
        return 0
    fi
    log=$(mktemp)
    timeout 15 qemu-system-x86_64 -accel kvm -cpu host -m 256 -machine q35 -no-reboot \
        -kernel "$img/vmlinuz" -append 'console=ttyS0 panic=-1' \
        -display none -serial "file:$log" >/dev/null 2>&1 || true
    if grep -q 'Kernel panic' "$log"; then ACCEL="-accel kvm -cpu host"; fi
    rm -f "$log"
    printf '%s\n%s\n' "$key" "$ACCEL" >"$cache"
}

dump_guest() {
    echo "----- guest journal (tail) -----"
    ssh_root 'journalctl -b --no-pager | tail -n 80' 2>&1 || echo "(guest unreachable)"
    echo "----- serial log (tail) -----"
    tail -n 40 "$VM_SERIAL" 2>/dev/null | tr -d '\r' || true
    echo "--------------------------------"
}

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
trap stop_vm EXIT

run_suite() {
    local suite=$1 img t0 t1 fails0
    t0=$SECONDS
    fails0=$(grep -c '^FAIL' "$VM_RESULTS" || true)
    echo "=== $suite ==="
    img=$("$HERE/image.sh" "$suite") || { fail "image" "image.sh failed"; return; }
    probe_accel "$img"

    VM_SUITE=$suite
    # Others may be running VMs from the same cache: remove only runs whose QEMU is gone.
    local d
    for d in "$CACHE_ROOT"/run-*; do
        [ -d "$d" ] || continue
        if [ -f "$d/qemu.pid" ] && kill -0 "$(cat "$d/qemu.pid")" 2>/dev/null; then continue; fi
        [ -n "$(find "$d" -maxdepth 0 -mmin +5)" ] && rm -rf "$d"
    done
    VM_RUN_DIR=$(mktemp -d "$CACHE_ROOT/run-$suite-XXXXXX")
    VM_SERIAL=$VM_RUN_DIR/serial.log
    VM_KEY=$VM_RUN_DIR/id_test
    VM_PORT=$(free_port)
    export VM_SUITE VM_RUN_DIR VM_SERIAL VM_KEY VM_PORT
    install -m 0600 "$img/id_test" "$VM_KEY"
    qemu-img create -q -f qcow2 -b "$img/base.qcow2" -F qcow2 "$VM_RUN_DIR/run.qcow2"

    # shellcheck disable=SC2086 # ACCEL holds several words on purpose
    qemu-system-x86_64 $ACCEL -machine q35 -m 2G -smp 2 \
        -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
        -append 'root=/dev/vda rw console=ttyS0 quiet systemd.show_status=0' \
        -drive "file=$VM_RUN_DIR/run.qcow2,if=virtio,format=qcow2,cache=unsafe" \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$VM_PORT-:22" \
        -device virtio-net-pci,netdev=n0 -display none -serial "file:$VM_SERIAL" \
        -monitor none -pidfile "$VM_RUN_DIR/qemu.pid" &
    VM_QEMU_PID=$!
    export VM_QEMU_PID

    if ! wait_boot_done; then
        fail "boot" "no ssh within ${VM_BOOT_TIMEOUT}s ($ACCEL)"
        dump_guest
        stop_vm
        return
    fi
    pass "boot" "$((SECONDS - t0)) s to ssh, ${ACCEL%% -cpu*}"

    # Installed the way an admin would: the package file, apt resolves the rest.
    t1=$SECONDS
    local name
    name=$(basename "$deb")
    if copy_in "$deb" "/root/$name" &&
        ssh_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/$name" >"$VM_RUN_DIR/install.log" 2>&1 &&
        copy_in "$VM_POLICY" /etc/contain/policy.toml &&
        reboot_and_wait; then
        pass "install" "apt-get install + reboot $((SECONDS - t1)) s"
    else
        fail "install" "see below"
        tail -n 30 "$VM_RUN_DIR/install.log"
        dump_guest
        stop_vm
        return
    fi

    local check cname before rc prefixes timings="boot+install:$((SECONDS - t0))s"
    read -r -a prefixes <<<"${VM_CHECKS:-}"
    for check in "$CHECK_DIR"/[0-9][0-9]-*.sh; do
        cname=$(basename "$check" .sh)
        if ((${#prefixes[@]})); then
            local p hit=
            for p in "${prefixes[@]}"; do [[ $cname == "$p"* ]] && hit=1; done
            [ -n "$hit" ] || continue
        fi
        before=$(grep -c '^FAIL' "$VM_RESULTS" || true)
        local lines_before
        lines_before=$(wc -l <"$VM_RESULTS")
        rc=0
        local tc=$SECONDS
        bash "$check" || rc=$?
        timings+=" ${cname%%-*}:$((SECONDS - tc))s"
        if [ "$(wc -l <"$VM_RESULTS")" -eq "$lines_before" ]; then
            if [ "$rc" -eq 0 ]; then fail "$cname" "reported no result"; else fail "$cname" "exited $rc"; fi
        elif [ "$rc" -ne 0 ] && [ "$(grep -c '^FAIL' "$VM_RESULTS" || true)" -eq "$before" ]; then
            fail "$cname" "exited $rc after reporting"
        fi
        if [ "$(grep -c '^FAIL' "$VM_RESULTS" || true)" -gt "$before" ]; then
            dump_guest
            vm_alive || break
        fi
    done
    stop_vm
    # A clean run leaves nothing behind; a failed one keeps its overlay and logs.
    if [ "$(grep -c '^FAIL' "$VM_RESULTS" || true)" -eq "$fails0" ]; then rm -rf "$VM_RUN_DIR"; fi
    echo "=== $suite done in $((SECONDS - t0)) s ($timings) ==="
}

VM_RESULTS=$(mktemp)
export VM_RESULTS
start=$SECONDS
mkdir -p "$CACHE_ROOT"
for suite in "${SUITES[@]}"; do
    run_suite "$suite"
done
passed=$(grep -c '^PASS' "$VM_RESULTS" || true)
failed=$(grep -c '^FAIL' "$VM_RESULTS" || true)
# Again at the end, where a log's tail shows them.
grep '^FAIL' "$VM_RESULTS" || true
rm -f "$VM_RESULTS"
echo "VM suite (${SUITES[*]}) wall time: $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
