#!/bin/sh
# dashboard_screenshot.sh — docs/dashboard.png: the dashboard of a daemon on
# a loopback port while a few clients run jobs, taken in Debian's Chromium
# by tests/browser/dashboard.mjs (scripts/deps.sh installs what it needs).
#
#   BUILD=build scripts/dashboard_screenshot.sh [OUT.png]
set -eu
BUILD=${BUILD:-build}
OUT=$(realpath -m "${1:-docs/dashboard.png}")
work=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT

"$BUILD/wsjobd" --listen 127.0.0.1:0 --cpu-workers 2 --io-threads 4 2>"$work/log" &
pids="$!"
for i in $(seq 100); do grep -q ready "$work/log" && break; sleep 0.1; done
port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$work/log" | head -1)
url=ws://127.0.0.1:$port

# A minute of history, then the load the picture shows: sha256 and sleeps
# from a few clients, with a queue building behind the CPU workers.
"$BUILD/wsjob" --url "$url" bench --type sha256 --input '{"data":"x","rounds":3000}' -c 4 -p 4 -d 70 \
    >/dev/null 2>&1 &
pids="$pids $!"
sleep 30
"$BUILD/wsjob" --url "$url" bench --type sleep --input '{"ms":300}' -c 3 -p 2 -d 40 >/dev/null 2>&1 &
pids="$pids $!"
"$BUILD/wsjob" --url "$url" bench --type modsum --input '{"n":3,"iterations":20000000}' -c 2 -p 8 -d 40 \
    --allow-errors >/dev/null 2>&1 &
pids="$pids $!"
sleep 25
mkdir -p "$(dirname "$OUT")"
cd tests/browser
node dashboard.mjs "{\"url\":\"http://127.0.0.1:$port/\",\"steps\":[\"load\",\"screenshot\"],\"screenshot\":\"$OUT\",\"settle_ms\":2500}" \
    | grep -q '"path"' || { echo "screenshot failed" >&2; exit 1; }
echo "$OUT"
