#!/usr/bin/env bash
# Renders the HTML report of a run in headless Chromium and saves a
# screenshot, to see that the report looks right in a real browser.
#   scripts/report-screenshot.sh [SCENARIO] [OUT_DIR]
# Needs Debian's chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/replicated-server-crash.toml}
out=${2:-out/report}
mkdir -p "$out"
export RUSTFLAGS="--cfg madsim"
cargo build --release --quiet
target/release/pssim run "$scenario" --report "$out/report.html" > /dev/null || true
profile=$(mktemp -d)
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size=1100,2400 \
    --screenshot="$out/report.png" "file://$PWD/$out/report.html" 2> /dev/null
rm -rf "$profile"
echo "report: $out/report.html, screenshot: $out/report.png"
