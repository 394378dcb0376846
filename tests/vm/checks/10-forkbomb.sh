#!/usr/bin/env bash
# A fork bomb of alice's is bounded by her slice's TasksMax: of 3,000 forks only those
# up to pids.max succeed, the rest fail with EAGAIN, pids.current never passes pids.max,
# and a fresh root login gets in meanwhile.
# vm-suites: trixie
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 10-forkbomb
alice_slice
tasks=$(user_limit alice tasks_max)
tries=3000
gdir=/tmp/contain-bomb
# What a root login may take while alice's slice is full (an idle one takes 2-4 s under TCG).
login_bound=30

cleanup() {
    ssh_root "touch $gdir/stop; pkill -u alice" >/dev/null 2>&1 || true
    wait_until 60 ssh_root '! pgrep -u alice' || ssh_root 'pkill -KILL -u alice' >/dev/null 2>&1 || true
    ssh_root "loginctl terminate-user alice; rm -rf $gdir /tmp/bomb.alice /tmp/bomb.alice.tmp" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The bomb: every child only sleeps (until the cleanup kills it: no slot is freed during
# the run); the parent counts what it got.
cat >"$VM_RUN_DIR/bomb.py" <<'PY'
import errno, os, sys, time
tries, hold, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
made = failed = eagain = 0
start = time.time()
for _ in range(tries):
    try:
        pid = os.fork()
    except OSError as e:
        failed += 1
        eagain += e.errno == errno.EAGAIN
        continue
    if pid == 0:
        time.sleep(hold)
        os._exit(0)
    made += 1
with open(out + ".tmp", "w") as f:
    f.write(f"{made} {failed} {eagain} {time.time() - start:.1f}\n")
os.rename(out + ".tmp", out)
PY
# Root's sampler of the slice's pids.current, every 50 ms until told to stop.
cat >"$VM_RUN_DIR/sampler.py" <<'PY'
import os, sys, time
cg, out, stop, dur = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
peak = samples = over = 0
maxes = set()
end = time.time() + dur
while time.time() < end and not os.path.exists(stop):
    try:
        cur = int(open(f"/sys/fs/cgroup{cg}/pids.current").read())
        maxes.add(open(f"/sys/fs/cgroup{cg}/pids.max").read().strip())
        peak = max(peak, cur)
        samples += 1
        over += any(m != "max" and cur > int(m) for m in maxes)
    except (OSError, ValueError):
        pass
    time.sleep(0.05)
with open(out + ".tmp", "w") as f:
    f.write(f"{peak} {samples} {over} {','.join(sorted(maxes)) or '-'}\n")
os.rename(out + ".tmp", out)
PY
ssh_root "rm -rf $gdir /tmp/bomb.alice && mkdir -m 755 $gdir"
copy_in "$VM_RUN_DIR/bomb.py" "$gdir/bomb.py"
copy_in "$VM_RUN_DIR/sampler.py" "$gdir/sampler.py"
ssh_root "chmod 644 $gdir/bomb.py $gdir/sampler.py"

# seconds CMD...: how long CMD took, to a tenth.
seconds() {
    local t0 rc=0
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || rc=$?
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f\n", b - a}'
    return "$rc"
}
idle=$(seconds ssh_within 60 root true) || idle="failed"

ssh_root "nohup python3 $gdir/sampler.py $slice $gdir/peak $gdir/stop 900 >/dev/null 2>&1 &"
t0=$SECONDS
# Its own login; the children hold no fds of it, so ssh returns when the parent exits.
ssh_as alice "python3 $gdir/bomb.py $tries 900 /tmp/bomb.alice >/dev/null 2>&1 </dev/null" >/dev/null 2>&1 &
bomb=$!

full() { [ "$(cg_read "$slice" pids.current 2>/dev/null || echo 0)" -ge "$tasks" ]; }
if wait_until 180 full; then
    figs+=("slice full after $((SECONDS - t0)) s")
else
    errs+=("alice's slice never reached $tasks tasks (pids.current $(cg_read "$slice" pids.current 2>/dev/null || echo ?))")
fi
# A fresh root login while the bomb keeps trying.
if during=$(seconds ssh_within 90 root true); then
    figs+=("root login ${during} s during it (${idle} s before)")
    awk -v t="$during" -v b="$login_bound" 'BEGIN {exit !(t <= b)}' ||
        errs+=("root's login took ${during} s with alice's slice full, over ${login_bound} s")
else
    errs+=("root could not log in within 90 s during the fork bomb")
fi

if wait_until 300 ssh_root 'test -s /tmp/bomb.alice'; then
    read -r made failed eagain took <<<"$(ssh_root 'cat /tmp/bomb.alice')"
    figs+=("$made of $tries forks succeeded, $failed failed ($eagain EAGAIN) in $took s")
    ((made < tasks)) || errs+=("$made children created, pids.max is $tasks")
    # Only TasksMax may stop it: nearly all of the slice's tasks are its children.
    ((made >= tasks - 32)) || errs+=("only $made children created with pids.max $tasks: something else stopped the forks")
    ((failed > 0 && failed == eagain)) || errs+=("$failed forks failed, $eagain with EAGAIN")
    # The tasks really in her slice now, every child still alive.
    live=$(ssh_root "find /sys/fs/cgroup$slice -name cgroup.threads -exec cat {} + | wc -l" || true)
    if [[ $live =~ ^[0-9]+$ ]] && ((live <= tasks)); then
        figs+=("$live tasks in the slice after it")
    else
        errs+=("${live:-?} tasks in alice's slice after the bomb, pids.max $tasks")
    fi
else
    errs+=("the fork bomb did not finish within 300 s")
fi
# Its login may still be closing (or hang, if the bomb did): not waited for unbounded.
kill "$bomb" 2>/dev/null || true
wait "$bomb" 2>/dev/null || true

ssh_root "touch $gdir/stop"
if wait_until 30 ssh_root "test -s $gdir/peak"; then
    read -r peak samples over maxes <<<"$(ssh_root "cat $gdir/peak")"
    figs+=("pids.current peak $peak of pids.max $maxes ($over of $samples samples above)")
    [ "$maxes" = "$tasks" ] || errs+=("alice's pids.max read $maxes, want $tasks")
    # A rejected fork charges the counter, then takes the charge back: a reader may catch
    # pids.max + 1 for that instant (one forker here). More would be tasks really there.
    ((peak <= tasks + 1)) || errs+=("pids.current reached $peak, over pids.max $tasks")
else
    errs+=("the pids sampler wrote nothing")
fi
state=$(ssh_root 'systemctl is-system-running' || true)
case "$state" in running | degraded) ;; *) errs+=("system state $state") ;; esac

trap - EXIT
cleanup
ssh_root '! pgrep -u alice' >/dev/null || errs+=("alice's processes are left over")
finish "$name"
