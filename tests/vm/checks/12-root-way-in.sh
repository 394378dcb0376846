#!/usr/bin/env bash
# Root's way in stays uncapped: from the admin's ssh session, `sudo -i`, `sudo su -` and
# `sudo -u ldapdave -i` (an exempt account) run a shell, and what it starts, outside the
# admin's user-1000.slice, with no memory.max below user.slice, and ldapdave's slice weighs
# as system.slice; a root process left behind by `sudo -i` stays there after the admin logs
# out. A non-exempt target keeps its own caps: alice's `su - bob` lands in bob's
# user-1002.slice.
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 12-root-way-in
tool=/usr/local/bin/vm-cgroup.sh
admin_slice=/user.slice/user-$(ssh_root 'id -u admin').slice
bob_uid=$(ssh_root 'id -u bob')

cleanup() { ssh_root 'pkill -xf "sleep 7301"; pkill -u ldapdave' >/dev/null 2>&1 || true; }
trap cleanup EXIT
copy_in "$VM_HERE/tools/vm-cgroup.sh" "$tool" && ssh_root "chmod 755 $tool"

# The probe, run as the target's shell: "shell WHO CGROUP LOWEST" then "child ..." for a
# process that shell starts.
probe="echo shell \$(id -un) \$($tool \$\$); sleep 300 & echo child \$(id -un) \$($tool \$!); kill \$!"

# judge_free WHAT OUTPUT WANT-USER: shell and child ran as WANT-USER, outside the admin's
# slice, with nothing capped below user.slice.
judge_free() {
    local what=$1 out=$2 want=$3 kind who cg low seen=0
    while read -r kind who cg low; do
        [ "$kind" = shell ] || [ "$kind" = child ] || continue
        seen=$((seen + 1))
        if [ "$who" != "$want" ]; then
            errs+=("$what: $kind ran as $who, not $want")
        elif [[ $cg == "$admin_slice"/* ]]; then
            errs+=("$what: $kind in the admin's slice: $cg")
        elif [ "$low" != max ]; then
            errs+=("$what: $kind in $cg is under memory.max $(mib "$low")")
        else
            figs+=("$what $kind ${cg#/user.slice/}")
        fi
    done <<<"$out"
    ((seen == 2)) || errs+=("$what: no answer ($(tr '\n' ' ' <<<"$out" | cut -c1-200))")
}

judge_free "sudo -i" "$(ssh_as admin "sudo -n -i sh -c '$probe'" 2>&1 || true)" root
judge_free "sudo su -" "$(ssh_as admin "sudo -n su - -c '$probe'" 2>&1 || true)" root
judge_free "sudo -u ldapdave -i" "$(ssh_as admin "sudo -n -u ldapdave -i sh -c '$probe'" 2>&1 || true)" ldapdave
# ldapdave is a directory account, unseen by the generator at boot: pam_contain gives its slice
# system.slice's CPU weight at login (1000 in the test policy).
weight=$(ssh_as admin "sudo -n -u ldapdave -i sh -c 'cat /sys/fs/cgroup\$(dirname \$(cut -d: -f3 /proc/self/cgroup))/cpu.weight'" 2>&1 || true)
if [ "$weight" = 1000 ]; then
    figs+=("ldapdave's slice at CPUWeight $weight")
else
    errs+=("ldapdave's slice has cpu.weight '$(tr '\n' ' ' <<<"$weight" | cut -c1-160)', want system.slice's 1000")
fi

# Left behind by root's shell: still outside once the admin's login has ended.
sid=$(ssh_as admin "sudo -n -i sh -c 'nohup sleep 7301 >/dev/null 2>&1 </dev/null &'; echo \$XDG_SESSION_ID" || true)
closed() {
    local st
    st=$(ssh_root "loginctl show-session '$sid' -P State 2>/dev/null" || true)
    [ -z "$st" ] || [ "$st" = closing ]
}
[ -n "$sid" ] && wait_until 60 closed || errs+=("the admin's login ${sid:-?} did not end")
read -r cg low <<<"$(ssh_root "$tool \$(pgrep -o -xf 'sleep 7301')" || true)"
if [ -z "${cg:-}" ]; then
    errs+=("root's nohup'd sleep is gone after the admin's logout")
elif [[ $cg == "$admin_slice"/* ]] || [ "$low" != max ]; then
    errs+=("root's nohup'd sleep after logout in $cg under $(mib "$low")")
else
    figs+=("after logout ${cg#/user.slice/}")
fi

# alice's `su - bob` (bob's password on stdin): bob's slice and caps.
bob_max=$(user_limit bob memory_max)
out=$(ssh_as alice "echo contain-test-bob | su - bob -c '$tool \$\$' 2>/dev/null" || true)
read -r cg low <<<"$out"
if [[ ${cg:-} != /user.slice/user-$bob_uid.slice/* ]]; then
    errs+=("alice's su - bob ran in ${cg:-?} ($(tr '\n' ' ' <<<"$out" | cut -c1-160))")
elif [ "$low" != "$bob_max" ]; then
    errs+=("alice's su - bob in $cg under memory.max $(mib "$low"), want bob's $(mib "$bob_max")")
else
    figs+=("alice's su - bob ${cg#/user.slice/} $(mib "$low")")
fi

trap - EXIT
cleanup
finish "$name"
