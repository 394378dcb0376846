#!/usr/bin/env bash
# Footprint of contain-watchdog: memory and CPU while idle with N capped cgroups watched,
# then while one of them is being pushed over its memory.high (sampled once a second).
# Runs the release binary against a kernel-shaped fake cgroupfs tree, so it works anywhere.
#   watchdog/bench/footprint.sh [CGROUPS] [IDLE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-50}
idle=${2:-60}

cargo build -q --release -p contain-watchdog
bin=target/release/contain-watchdog
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A fixture root (CONTAIN_ROOT): its cgroupfs, policy, state and notices.
root=$work/root/sys/fs/cgroup
for i in $(seq 1 "$n"); do
    d=$root/user.slice/user-$((2000 + i)).slice
    mkdir -p "$d/session-1.scope"
    echo 314572800 >"$d/memory.current"
    echo 629145600 >"$d/memory.high"
    echo 838860800 >"$d/memory.max"
    echo 0 >"$d/memory.swap.max"
    printf 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n' >"$d/memory.events"
    printf 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' >"$d/memory.pressure"
    : >"$d/cgroup.procs"
done
mkdir -p "$work/root/etc/contain"
cat >"$work/root/etc/contain/policy.toml" <<'P'
[users]
memory_high = "600M"
memory_max = "800M"
memory_swap_max = 0
P

CONTAIN_ROOT=$work/root CONTAIN_KMSG=off "$bin" 2>"$work/log" &
pid=$!
sleep 2
grep -q "watching $n capped cgroups" "$work/log" || { echo "watchdog did not start:"; cat "$work/log"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ctx() { awk '/^voluntary_ctxt_switches/ {v=$2} /^nonvoluntary_ctxt_switches/ {n=$2} END {print v + n}' "/proc/$pid/status"; }
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }

c0=$(cpu) w0=$(ctx)
sleep "$idle"
c1=$(cpu) w1=$(ctx)
echo "idle, $n cgroups watched, ${idle} s: RSS $(kb VmRSS) kB (peak $(kb VmHWM) kB)," \
    "CPU $(( (c1 - c0) * 1000 / ticks )) ms, wakeups $((w1 - w0))"

# One cgroup pushed over memory.high, but barely stalled: sampled every second, never acted on.
d=$root/user.slice/user-2001.slice
c0=$(cpu) w0=$(ctx)
end=$((SECONDS + 10)) ev=0
while ((SECONDS < end)); do
    ev=$((ev + 5))
    printf 'low 0\nhigh %d\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n' "$ev" >"$d/memory.events"
    sleep 0.1
done
c1=$(cpu) w1=$(ctx)
echo "one cgroup at memory.high, events 10/s, 10 s: CPU $(( (c1 - c0) * 1000 / ticks )) ms, wakeups $((w1 - w0)), RSS $(kb VmRSS) kB"
