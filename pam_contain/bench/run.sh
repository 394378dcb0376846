#!/usr/bin/env bash
# pam_contain's benchmark: stripped .so size, open_session wall time (median/p99 over CALLS
# calls, real Linux-PAM in-process, fake systemd on a private dbus-daemon), RSS added to the host.
# Usage: pam_contain/bench/run.sh [CALLS]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:-1000}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The module exactly as packaged: release profile, symbols stripped, no test features.
cargo build --release -q -p pam_contain
cp "$target/release/libpam_contain.so" "$work/"
echo "stripped libpam_contain.so: $(stat -c %s "$work/libpam_contain.so") bytes"

cargo build --release -q -p pam_contain --example bench
"$target/release/examples/bench" "$work/libpam_contain.so" "$calls"
