#!/bin/sh
# vm-cgroup.sh PID: "CGROUP LOWEST" for PID, LOWEST being the lowest memory.max from its
# cgroup up to the root ("max" if none is capped), user.slice itself left out: its cap
# ([user_slice]) holds every user together, root's way in included. Nothing if PID is gone.
cg=$(sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null)
[ -n "$cg" ] || exit 0
p=$cg m=max
while [ -n "$p" ]; do
    v=$(cat "/sys/fs/cgroup$p/memory.max" 2>/dev/null || echo max)
    [ "$p" = /user.slice ] && v=max
    if [ "$v" != max ] && { [ "$m" = max ] || [ "$v" -lt "$m" ]; }; then m=$v; fi
    p=${p%/*}
done
echo "$cg $m"
