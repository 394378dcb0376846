#!/usr/bin/env bash
# Installs what the build and the tests need, only what is missing. Safe to run again.
set -euo pipefail

missing=()
apt_need() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
}

# Unit checks (systemd-analyze verify) and the generator's tests; systemd-oomd's unit on the
# host shows that the golden tests see only their fixture root.
apt_need systemd systemd-oomd
# Benchmarks.
apt_need hyperfine
# pam_contain: link against libpam; its tests run real Linux-PAM (pamtester under pam_wrapper)
# against a private dbus-daemon.
apt_need libpam0g-dev libpam-wrapper libnss-wrapper pamtester dbus
# containctl: its metrics are checked with Prometheus's own text-format parser (python3).
apt_need python3 python3-prometheus-client
# The shipped alerting rules are checked and unit-tested with promtool.
apt_need prometheus
# The package's PAM module path per architecture is checked against dpkg-architecture.
apt_need dpkg-dev

if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The policy parser's fuzz smoke run (libFuzzer through cargo-fuzz, no sanitizer: stable Rust).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
