#!/bin/sh
# Runs every unit test binary (Check) and every integration test module
# (Python unittest, real daemon on loopback), then prints one summary line
# "N passed, N failed" counted over test cases.
# BUILD names the build directory (build, build-address-undefined, ...).
# TESTS, if set, is a space-separated list of names to run (e.g. "test_ring").
set -u
BUILD=${BUILD:-build}
export WSJOBD_BIN="$PWD/$BUILD/wsjobd" WSJOB_BIN="$PWD/$BUILD/wsjob" WSJOBD_BUILD="$PWD/$BUILD"
PY=/usr/bin/python3
passed=0 failed=0 broken=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

wanted() { [ -z "${TESTS:-}" ] && return 0; for w in $TESTS; do [ "$w" = "$1" ] && return 0; done; return 1; }

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    name=$(basename "$t"); wanted "$name" || continue
    echo "== $name"
    "$t" >"$log" 2>&1; rc=$?
    cat "$log"
    line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -1)
    n=$(echo "$line" | sed -n 's/.*Checks: \([0-9]*\).*/\1/p')
    f=$(echo "$line" | sed -n 's/.*Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2/p')
    if [ -z "$n" ]; then
        failed=$((failed + 1)); broken="$broken $name(no-summary,rc=$rc)"; continue
    fi
    bad=$(( $(echo $f | cut -d' ' -f1) + $(echo $f | cut -d' ' -f2) ))
    passed=$((passed + n - bad)); failed=$((failed + bad))
    [ $bad -ne 0 ] || [ $rc -ne 0 ] && broken="$broken $name"
done

for t in tests/test_*.py; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .py); wanted "$name" || continue
    echo "== $name"
    (cd tests && timeout 900 $PY -m unittest -v "$name") >"$log" 2>&1; rc=$?
    cat "$log"
    n=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$log" | tail -1)
    if [ -z "$n" ]; then
        failed=$((failed + 1)); broken="$broken $name(no-summary,rc=$rc)"; continue
    fi
    bad=0
    fl=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$log" | tail -1)
    if [ -n "$fl" ]; then
        for kv in $(echo "$fl" | tr ',' ' '); do
            case "$kv" in failures=*|errors=*) bad=$((bad + ${kv#*=})) ;; esac
        done
    fi
    sk=$(echo "$fl $(sed -n 's/^OK (\(.*\))/\1/p' "$log")" | tr ',' '\n' | sed -n 's/.*skipped=\([0-9]*\).*/\1/p' | head -1)
    sk=${sk:-0}
    # A skipped test is not a passed test.
    passed=$((passed + n - bad - sk)); failed=$((failed + bad + sk))
    [ $rc -ne 0 ] || [ $bad -ne 0 ] || [ "$sk" -ne 0 ] && broken="$broken $name"
done

[ -n "$broken" ] && echo "failing:$broken"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ -z "$broken" ]
