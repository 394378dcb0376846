#!/usr/bin/env bash
# Renders every policy we ship or test with and has systemd check each resulting unit.
# `systemd-analyze verify` exits 0 on unknown keys and bad values, so any stderr line fails.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -q -p contain-generator
gen=target/debug/contain-generator
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

policies=(packaging/policy.toml examples/*.toml)
[[ -f tests/vm/policy.toml ]] && policies+=(tests/vm/policy.toml)

failed=0 checked=0
# verify LABEL UNIT_PATH UNIT: systemd-analyze verify, failing on any stderr line.
verify() {
    checked=$((checked + 1))
    local err
    err=$(SYSTEMD_UNIT_PATH="$2" systemd-analyze verify --man=no "$3" 2>&1 >/dev/null) || true
    if [[ -n "$err" ]]; then
        echo "FAIL $1: $3"; echo "$err" | sed 's/^/    /'; failed=1
    fi
}
for policy in "${policies[@]}"; do
    out="$work/$(basename "$policy" .toml)-$checked"
    # A fixture root holding the policy and the test accounts (CONTAIN_ROOT moves every host path).
    mkdir -p "$out/root/etc/contain"
    cp tests/fixtures/etc/{passwd,group} "$out/root/etc/"
    cp "$policy" "$out/root/etc/contain/policy.toml"
    CONTAIN_ROOT="$out/root" CONTAIN_LOG=stderr "$gen" "$out/units" 2>"$out.log" || {
        echo "FAIL $policy: generator failed"; cat "$out.log"; failed=1; continue; }
    status="$out/root/run/contain/generator.json"
    if ! grep -q '"outcome": "applied"' "$status"; then
        echo "FAIL $policy: not applied"; cat "$status"; failed=1; continue
    fi
    # Units to check: each drop-in's unit, with a stand-in for templates and services we do not ship.
    units=(user-1001.slice user-1002.slice user-0.slice)
    stubs="$work/stubs-$checked"; mkdir -p "$stubs"
    while IFS= read -r rel; do
        unit=${rel%%.d/*}
        case "$unit" in
            user-.slice) continue ;;
            *@.service) printf '[Service]\nExecStart=/bin/true\n' >"$stubs/$unit"; unit=${unit/@./@check.} ;;
            *.service) printf '[Service]\nExecStart=/bin/true\n' >"$stubs/$unit" ;;
        esac
        units+=("$unit")
    done < <(cd "$out/units" && find . -name '*.conf' -o -name '*.slice' -type f | sed 's|^\./||')
    mapfile -t units < <(printf '%s\n' "${units[@]}" | sort -u)
    for unit in "${units[@]}"; do
        verify "$policy" "$out/units:$stubs:" "$unit"
    done
    echo "ok   $policy (${#units[@]} units)"
done
# The units the .deb ships, with the programs they start taken from this build.
cargo build -q -p containctl -p contain-watchdog
shipped="$work/shipped"; mkdir -p "$shipped"
for unit in packaging/*.service packaging/*.timer; do
    sed "s|/usr/sbin/|$PWD/target/debug/|" "$unit" >"$shipped/$(basename "$unit")"
done
shipped_units=("$shipped"/*)
for unit in "${shipped_units[@]}"; do
    verify shipped "$shipped:" "$(basename "$unit")"
done
echo "ok   packaging (${#shipped_units[@]} units)"
echo "verify-units: $checked units checked"
exit "$failed"
