#!/usr/bin/env bash
# Directory accounts (slapd + SSSD in the guest; the users and groups exist only in LDAP):
# ldaperin's ssh, cron and `su -` sessions land in user-5003.slice under the [users] caps;
# the override on the LDAP group ldaphpc applies to ldapcarol, typed as ldapcarol, LDAPCAROL
# or ldapcarol@example.org; ldapdave (exempt_users) is uncapped at his first login since the
# install's reboot (at boot the generator ran before the directory answered); the watchdog
# ends ldaperin's runaway and tells him; with slapd, then sssd, stopped root still logs in
# within the usual time.
set -euo pipefail
# shellcheck disable=SC1091 # lib.sh: followed by shellcheck -x
. "$(dirname "$0")/../lib.sh"
check_begin 11-directory
high=$(policy_get users.memory_high)
max=$(policy_get users.memory_max)
hpc_high=$(policy_get override.@ldaphpc.memory_high)
hpc_max=$(policy_get override.@ldaphpc.memory_max)
tool=/usr/local/bin/vm-cgroup.sh

restart_directory() { ssh_root 'systemctl start slapd.service sssd.service' >/dev/null 2>&1 || true; }
cleanup() {
    restart_directory
    ssh_root 'crontab -u ldaperin -r; pkill -u ldaperin; pkill -u ldapcarol; pkill -u ldapdave
        rm -f /tmp/cron-cg.ldaperin' >/dev/null 2>&1 || true
}
trap cleanup EXIT

# where USER-SPELLING: a real ssh login's canonical name, "CGROUP LOWEST-MEMORY.MAX" and its
# slice's memory.high and memory.max, on one line.
where() {
    ssh_as "$1" "echo \$(id -un) \$($tool \$\$) \$(cat /sys/fs/cgroup/user.slice/user-\$(id -u).slice/memory.high /sys/fs/cgroup/user.slice/user-\$(id -u).slice/memory.max)" 2>&1 | tail -n1
}
# judge WHAT "NAME CGROUP LOWEST HIGH MAX" UID WANT-HIGH WANT-MAX
judge() {
    local what=$1 uid=$3 want_high=$4 want_max=$5 n cg low h m
    read -r n cg low h m <<<"$2"
    if [[ ${cg:-} != /user.slice/user-$uid.slice/* ]]; then
        errs+=("$what: login in ${cg:-?} ($2)")
    elif [ "$h" != "$want_high" ] || [ "$m" != "$want_max" ] || [ "$low" != "$want_max" ]; then
        errs+=("$what: user-$uid.slice memory.high/max $(mib "$h")/$(mib "$m") (lowest below user.slice $(mib "$low")), want $(mib "$want_high")/$(mib "$want_max")")
    else
        figs+=("$what as $n in ${cg#/user.slice/} $(mib "$h")/$(mib "$m")")
    fi
}

copy_in "$VM_HERE/tools/vm-cgroup.sh" "$tool" && ssh_root "chmod 755 $tool"
install_tools
# The directory answers: every account and group is an LDAP one, none is local.
if ! wait_until 180 ssh_root 'getent passwd ldapcarol ldapdave ldaperin && getent group ldaphpc'; then
    fail "$name" "the directory does not answer: $(ssh_root 'systemctl is-active slapd sssd; getent passwd ldapcarol' 2>&1 | tr '\n' ' ')"
    exit 1
fi
ssh_root '! grep -q "^ldap" /etc/passwd /etc/group' || errs+=("LDAP accounts are in the local files")
for spelling in LDAPCAROL ldapcarol@example.org; do
    got=$(ssh_root "getent passwd $spelling | cut -d: -f1,3" || true)
    [ "$got" = ldapcarol:5001 ] || errs+=("getent passwd $spelling gives '${got}', want ldapcarol:5001")
done

# cron fires on the minute: install first, look last.
ssh_root 'rm -f /tmp/cron-cg.ldaperin; echo "* * * * * sed -n s/^0:://p /proc/self/cgroup > /tmp/cron-cg.ldaperin" | crontab -u ldaperin -'

# 1. ldaperin, a plain directory user: ssh and su - from root.
judge "ldaperin ssh" "$(where ldaperin)" 5003 "$high" "$max"
cg=$(ssh_root 'su - ldaperin -c "sed -n s/^0:://p /proc/self/cgroup"' || true)
case "$cg" in
/user.slice/user-5003.slice/*) figs+=("su - ldaperin ${cg#/user.slice/}") ;;
*) errs+=("su - ldaperin ran in ${cg:-?}") ;;
esac

# 2. ldapcarol, in the LDAP group ldaphpc, under every spelling. Before each login her slice
# is set back to the [users] caps: the login itself must put the group's override on it.
for spelling in ldapcarol LDAPCAROL ldapcarol@example.org; do
    ssh_root "systemctl set-property --runtime user-5001.slice MemoryHigh=$high MemoryMax=$max" || true
    judge "ssh $spelling" "$(where "$spelling")" 5001 "$hpc_high" "$hpc_max"
done

# 3. ldapdave (exempt_users): the generator never saw him; his first login is uncapped.
ssh_root 'test ! -e /run/systemd/system.control/user-5002.slice.d' ||
    errs+=("ldapdave's slice had runtime properties before his first login")
judge "ldapdave first login" "$(where ldapdave)" 5002 max max
swap_tasks() { ssh_root 'cat /sys/fs/cgroup/user.slice/user-5002.slice/memory.swap.max /sys/fs/cgroup/user.slice/user-5002.slice/pids.max' | tr '\n' ' '; }
st=$(swap_tasks || true)
[ "$st" = "max max " ] || errs+=("ldapdave's memory.swap.max/pids.max: $st, want max max")

# 4. The watchdog ends ldaperin's runaway (twice his ceiling) and tells him at next login.
grace=$(policy_get watchdog.grace 10s | tr -dc 0-9)
kills0=$(memevent /user.slice/user-5003.slice oom_kill)
t0=$(guest_now)
ts=$SECONDS
ssh_within $((grace + 90)) ldaperin "/usr/local/bin/vm-grow.py 50 50 $(((max >> 20) * 2))" >/dev/null 2>&1 || true
kills=$(($(memevent /user.slice/user-5003.slice oom_kill) - kills0))
entry=$(ssh_root "journalctl SYSLOG_IDENTIFIER=contain-watchdog CONTAIN_UID=5003 --since @${t0%.*} -o json --no-pager" |
    python3 -c 'import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print(" ".join(f"{k}={rows[-1].get(k)}" for k in ("CONTAIN_REASON", "CONTAIN_USER")) if rows else "")' || true)
if ((kills != 1)); then
    errs+=("$kills OOM kills in ldaperin's slice during his runaway, expected 1")
elif [[ $entry != *CONTAIN_REASON=throttled*CONTAIN_USER=ldaperin* ]]; then
    errs+=("watchdog journal entry for uid 5003: '${entry}'")
else
    figs+=("runaway ended in $((SECONDS - ts)) s ($entry)")
fi
# The notice follows the journal entry: wait for it rather than race the watchdog.
if wait_until 30 ssh_root 'test -s /var/lib/contain/notices/5003'; then
    told=$(printf 'exit\n' | ssh "${VM_SSH_OPTS[@]}" -tt -i "$VM_KEY" -p "$VM_PORT" ldaperin@127.0.0.1 2>&1 |
        tr -d '\r' | grep -m1 '^contain:' || true)
    if [ -n "$told" ]; then figs+=("told"); else errs+=("ldaperin's terminal login did not show the notice"); fi
else
    errs+=("no notice left for ldaperin: $(ssh_root "journalctl -u contain-watchdog --since @${t0%.*} --no-pager -o cat | tail -n 3" | tr '\n' ' ' || true)")
fi

# 5. ldaperin's cron job.
if wait_until 90 ssh_root 'test -s /tmp/cron-cg.ldaperin'; then
    cg=$(ssh_root 'cat /tmp/cron-cg.ldaperin')
    case "$cg" in
    /user.slice/user-5003.slice/*) figs+=("cron ${cg#/user.slice/}") ;;
    *) errs+=("ldaperin's cron job ran in ${cg:-?}") ;;
    esac
else
    errs+=("ldaperin's cron job did not run within 90 s")
fi
ssh_root 'crontab -u ldaperin -r' || true

# 6. The directory down. A fresh root login, idle first for comparison.
login_time() {
    local s
    s=$(date +%s%N)
    ssh_within 60 root true || { echo fail; return; }
    echo $((($(date +%s%N) - s) / 1000000))
}
idle=$(login_time)
idle2=$(login_time)
[ "$idle" != fail ] && [ "$idle2" != fail ] || errs+=("root cannot log in with the directory up")
((idle2 > idle)) 2>/dev/null && idle=$idle2
# slapd down, sssd up: sssd answers from its cache, ldaperin is placed as before.
ssh_root 'systemctl stop slapd.service'
judge "slapd down: ldaperin ssh" "$(where ldaperin)" 5003 "$high" "$max"
down=$(login_time)
# Both down: NSS has no answer for the directory's accounts at all.
ssh_root 'systemctl stop sssd.service'
down2=$(login_time)
s=$SECONDS
out=$(ssh_within 60 ldaperin 'id -un; cat /proc/self/cgroup' 2>&1) && rc=0 || rc=$?
took=$((SECONDS - s))
if ((rc == 0)); then
    errs+=("ldaperin logged in with the directory down: $(tr '\n' ' ' <<<"$out")")
elif ((took >= 60)); then
    errs+=("ldaperin's login with the directory down hung for $took s")
else
    figs+=("directory down: ldaperin refused in $took s")
fi
for t in "$down" "$down2"; do
    if [ "$t" = fail ]; then
        errs+=("root could not log in with the directory down")
    elif ((t > idle * 2 + 5000)); then
        errs+=("root's login took $t ms with the directory down (idle $idle ms)")
    fi
done
figs+=("root login idle $idle ms, slapd down $down ms, both down $down2 ms")
restart_directory
wait_until 60 ssh_root 'getent passwd ldaperin' || errs+=("the directory did not come back")

trap - EXIT
cleanup
finish "$name"
