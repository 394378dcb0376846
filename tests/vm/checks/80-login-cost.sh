#!/usr/bin/env bash
# What pam_contain adds to an ssh login: bob logs in LOGIN_COST_RUNS times with the module in
# the session stack and as often without it, alternating (so drift in the emulated guest hits
# both alike), timed from the host. A benchmark: it reports the ratio and fails only if a
# login fails or the stack is not restored.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
name=80-login-cost
errs=()
figs=()
runs=${LOGIN_COST_RUNS:-30}
# Five minutes of logins per suite: one suite gives the figure (LOGIN_COST_SUITES widens it).
if [[ " ${LOGIN_COST_SUITES:-bookworm} " != *" $VM_SUITE "* ]]; then
    pass "$name" "measured on ${LOGIN_COST_SUITES:-bookworm} only"
    exit 0
fi

# The two stacks, made the way an admin would switch the module off and on.
ssh_root 'cp -p /etc/pam.d/common-session /root/common-session.with &&
    DEBIAN_FRONTEND=noninteractive pam-auth-update --package --disable contain &&
    cp -p /etc/pam.d/common-session /root/common-session.without &&
    cp -p /root/common-session.with /etc/pam.d/common-session'
# Back through pam-auth-update, from the file it last wrote: a copy alone would leave its
# record behind, and a later remove would find "local modifications" and keep the line.
restore() {
    ssh_root 'cp -p /root/common-session.without /etc/pam.d/common-session &&
        DEBIAN_FRONTEND=noninteractive pam-auth-update --package --enable contain' || true
}
trap restore EXIT
ssh_root 'grep -q pam_contain /root/common-session.with && ! grep -q pam_contain /root/common-session.without' ||
    errs+=("pam-auth-update did not take pam_contain out of common-session")

login() { # MODE: one timed login of bob's with that stack; prints seconds
    ssh_root "cp /root/common-session.$1 /etc/pam.d/common-session"
    local t0 t1
    t0=$(date +%s%N)
    ssh_as bob true || return 1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

with=() without=()
for ((i = 0; i < runs && ${#errs[@]} == 0; i++)); do
    # Alternate which goes first.
    if ((i % 2)); then order=(without with); else order=(with without); fi
    for mode in "${order[@]}"; do
        if ms=$(login "$mode"); then
            if [ "$mode" = with ]; then with+=("$ms"); else without+=("$ms"); fi
        else
            errs+=("bob's login failed (stack: $mode pam_contain)")
            break
        fi
    done
done
trap - EXIT
restore
ssh_root 'cmp -s /root/common-session.with /etc/pam.d/common-session' ||
    errs+=("common-session not restored")
ssh_root 'grep -q pam_contain /etc/pam.d/common-session-noninteractive' ||
    errs+=("common-session-noninteractive not restored")

if ((${#errs[@]} == 0)); then
    figs+=("$(python3 - "${with[*]}" "${without[*]}" <<'PY'
import statistics, sys
w = sorted(int(x) for x in sys.argv[1].split())
o = sorted(int(x) for x in sys.argv[2].split())
p90 = lambda v: v[min(len(v) - 1, int(len(v) * 0.9))]
mw, mo = statistics.median(w), statistics.median(o)
print(f"{len(w)}+{len(o)} ssh logins of bob: with pam_contain median {mw / 1000:.2f} s p90 {p90(w) / 1000:.2f} s, "
      f"without median {mo / 1000:.2f} s p90 {p90(o) / 1000:.2f} s, ratio of medians {mw / mo:.3f}")
PY
)")
fi
finish "$name"
