#!/usr/bin/env bash
# What pam_contain adds to an ssh login: alice and bob each log in LOGIN_COST_RUNS times with
# the module in the session stack and as often without it, alternating (so drift in the
# emulated guest hits both alike), timed from the host. A benchmark: it reports the ratios
# and fails only if a login fails or the stack is not restored.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
check_begin 80-login-cost
runs=${LOGIN_COST_RUNS:-12}
# Minutes of logins per suite: one suite gives the figure (LOGIN_COST_SUITES widens it).
if [[ " ${LOGIN_COST_SUITES:-trixie} " != *" $VM_SUITE "* ]]; then
    pass "$name" "measured on ${LOGIN_COST_SUITES:-trixie} only"
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

login() { # USER MODE: one timed login of USER's with that stack; prints milliseconds
    ssh_root "cp /root/common-session.$2 /etc/pam.d/common-session"
    local t0 t1
    t0=$(date +%s%N)
    ssh_as "$1" true || return 1
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}

# alice has no caps of her own (the module only reads); bob has an override, which the
# module sets on his new slice at each login (one SetUnitProperties call).
read -r -a users <<<"${LOGIN_COST_USERS:-alice bob}"
times=$VM_RUN_DIR/login-cost.txt
: >"$times"
for ((i = 0; i < runs && ${#errs[@]} == 0; i++)); do
    # Alternate which goes first.
    if ((i % 2)); then order=(without with); else order=(with without); fi
    for user in "${users[@]}"; do
        for mode in "${order[@]}"; do
            if ms=$(login "$user" "$mode"); then
                echo "$user $mode $ms" >>"$times"
            else
                errs+=("$user's login failed (stack: $mode pam_contain)")
                break 2
            fi
        done
    done
done
trap - EXIT
restore
ssh_root 'cmp -s /root/common-session.with /etc/pam.d/common-session' ||
    errs+=("common-session not restored")
ssh_root 'grep -q pam_contain /etc/pam.d/common-session-noninteractive' ||
    errs+=("common-session-noninteractive not restored")

if ((${#errs[@]} == 0)); then
    figs+=("$(python3 - "$times" <<'PY'
import statistics, sys
got = {}
for line in open(sys.argv[1]):
    user, mode, ms = line.split()
    got.setdefault(user, {}).setdefault(mode, []).append(int(ms))
p90 = lambda v: sorted(v)[min(len(v) - 1, int(len(v) * 0.9))]
parts = []
for user, t in got.items():
    w, o = t["with"], t["without"]
    mw, mo = statistics.median(w), statistics.median(o)
    parts.append(f"{user}: {len(w)}+{len(o)} ssh logins, with pam_contain median {mw / 1000:.2f} s p90 {p90(w) / 1000:.2f} s, "
                 f"without median {mo / 1000:.2f} s p90 {p90(o) / 1000:.2f} s, ratio of medians {mw / mo:.3f}")
print("; ".join(parts))
PY
)")
fi
finish "$name"
