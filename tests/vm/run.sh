#!/usr/bin/env bash
# The VM proof: boots a Debian VM per suite, installs the freshly built .deb the way
# an admin would, reboots, runs tests/vm/checks/*.sh in order, powers off.
#   tests/vm/run.sh [--demo] SUITE...      (SUITE = bookworm | trixie)
# Prints one PASS/FAIL line per check and a final "N passed, M failed" line.
# VM_CHECKS="01 05" runs only the checks whose names start with those prefixes.
# Several suites run side by side unless VM_PARALLEL=0, each guest with one vCPU per host
# core (VM_SMP overrides; a single guest gets 2).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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

deb=$(find_deb)
if [ -z "$deb" ]; then
    echo "run.sh: no target/debian/contain_*.deb (run make deb first)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

trap stop_vm EXIT

# Suites side by side share the host's two cores. A check marked "# vm-alone" times what the
# other guest would disturb (a fresh login under TCG is bound by CPU), so it runs with the
# host to itself: it waits for the other suites to finish booting and installing and their
# current check, and they wait between checks until it is done. Every other check holds
# the host shared. State: files beside $VM_RESULTS; each wait is bounded.
others_marked() { # KIND SUITE: another suite than SUITE has a KIND marker
    local f
    for f in "$VM_RESULTS.$1".*; do
        [ -e "$f" ] && [ "$f" != "$VM_RESULTS.$1.$2" ] && return 0
    done
    return 1
}
wait_unmarked() { # KIND SUITE SECONDS
    local end=$((SECONDS + $3))
    while others_marked "$1" "$2" && ((SECONDS < end)); do sleep 2; done
}
# host_turn SUITE CHECK: runs the check, alone on the host if it is marked so; sets
# host_wait to the seconds it waited for its turn. The check does not inherit the lock.
host_turn() {
    local suite=$1 check=$2 rc=0 t=$SECONDS lock alone=
    grep -q '^# vm-alone' "$check" && alone=1
    exec {lock}>>"$VM_RESULTS.lock"
    if [ -n "$alone" ]; then
        touch "$VM_RESULTS.alone.$suite"
        wait_unmarked setup "$suite" 1200
        flock -x "$lock"
    else
        wait_unmarked alone "$suite" 1800
        flock -s "$lock"
    fi
    host_wait=$((SECONDS - t))
    bash "$check" {lock}>&- || rc=$?
    exec {lock}>&-
    [ -z "$alone" ] || rm -f "$VM_RESULTS.alone.$suite"
    return "$rc"
}

run_suite() {
    local suite=$1 t0 t1 fails0
    t0=$SECONDS
    fails0=$(grep -c '^FAIL' "$VM_RESULTS" || true)
    echo "=== $suite ==="
    # Booting and installing: a vm-alone check of another suite waits until this is done.
    touch "$VM_RESULTS.setup.$suite"
    local rc=0 installed=0 faults
    # On VM_ANSIBLE_SUITES (bookworm unless set) contain is installed the way a fleet gets it:
    # through the Ansible role in examples/ansible/, from this host.
    local how=apt-get install=install_deb log=install.log
    if [[ " ${VM_ANSIBLE_SUITES-bookworm} " == *" $suite "* ]] && [ "$CHECK_DIR" = "$HERE/checks" ]; then
        how=ansible-playbook install=install_with_ansible log=ansible.log
    fi
    export VM_INSTALLED_BY=$how
    start_vm "$suite" || rc=$?
    if ((rc == 0)); then
        pass "boot" "$((SECONDS - t0)) s to ssh, ${VM_ACCEL%% -cpu*}"
        t1=$SECONDS
        $install "$deb" && installed=1
    fi
    rm -f "$VM_RESULTS.setup.$suite"
    if ((rc == 2)); then
        fail "image" "image.sh failed"
        return
    elif ((rc)); then
        faults=$(boot_faults | paste -sd';')
        fail "boot" "${faults:-no ssh or no finished start-up within ${VM_BOOT_TIMEOUT}s ($VM_ACCEL)}"
        dump_guest
        stop_vm
        return
    elif ((installed)); then
        pass "install" "$how + reboot $((SECONDS - t1)) s"
    else
        faults=$(boot_faults | paste -sd';')
        fail "install" "${faults:-see below}"
        tail -n 30 "$VM_RUN_DIR/$log"
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
        # A check that proves the same on every release may name the one it runs on
        # ("# vm-suites: trixie"), to keep the proof's time down.
        local only
        only=$(sed -n 's/^# vm-suites: *//p' "$check")
        if [ -n "$only" ] && [[ " $only " != *" $suite "* ]]; then
            echo "---- $suite/$cname: runs on $only only"
            continue
        fi
        before=$(grep -c '^FAIL' "$VM_RESULTS" || true)
        local lines_before
        lines_before=$(wc -l <"$VM_RESULTS")
        rc=0
        local tc=$SECONDS
        host_turn "$suite" "$check" || rc=$?
        timings+=" ${cname%%-*}:$((SECONDS - tc - host_wait))s"
        ((host_wait < 5)) || timings+="(+${host_wait}s for the host)"
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
# Suites run side by side (VM_PARALLEL=0: one after another): each guest's checks wait on
# conditions with generous bounds, so sharing the host's cores costs time, not results.
if ((${#SUITES[@]} > 1)) && [ "${VM_PARALLEL:-1}" = 1 ]; then
    trap - EXIT
    # One vCPU per host core: an emulated vCPU whose thread waits for a core stalls the
    # guest's other vCPU at every lock and IPI (side by side on 2 cores, -smp 2 took the
    # boot to ssh 219-272 s, -smp 1 92-148 s).
    export VM_SMP=${VM_SMP:-$(($(nproc) / ${#SUITES[@]} > 1 ? $(nproc) / ${#SUITES[@]} : 1))}
    pids=()
    for suite in "${SUITES[@]}"; do
        # Each line carries its suite, as the two guests' output interleaves.
        ( trap stop_vm EXIT; run_suite "$suite" ) 2>&1 | sed -u "s/^/[$suite] /" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || true; done
else
    for suite in "${SUITES[@]}"; do
        run_suite "$suite"
    done
fi
passed=$(grep -c '^PASS' "$VM_RESULTS" || true)
failed=$(grep -c '^FAIL' "$VM_RESULTS" || true)
# Again at the end, where a log's tail shows them.
grep '^FAIL' "$VM_RESULTS" || true
rm -f "$VM_RESULTS" "$VM_RESULTS".*
echo "VM suite (${SUITES[*]}) wall time: $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
