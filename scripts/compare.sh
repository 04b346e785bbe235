#!/bin/bash
# compare.sh — wsjobd beside what people build instead, measured by the same
# `wsjob bench` runs on this machine:
#
#   wsjobd   $BUILD/wsjobd, --cpu-workers N
#   fastapi  FastAPI + uvicorn, CPU jobs in a ProcessPoolExecutor(max_workers=N)
#            through loop.run_in_executor  (compare/fastapi_server.py)
#   node     Node.js `ws` + a `piscina` pool of N worker threads
#            (compare/node_server.mjs, compare/node_worker.mjs)
#   fork     one forked process per connection running wsjobd's own frame
#            reader and handlers inline  (compare/fork_server.c)
#
# Cases, each against every server (bench verifies every reply, and exits 1
# on any missing, wrong or out-of-order one):
#   idle     IDLE_CONNS idle WebSockets: the servers' memory per connection
#   echo     raw ordered /run/echo, 64 B, 50 connections x 16 in flight
#   sha256   /jobs JSON, {"data":"x","rounds":SHA_ROUNDS}, 8 x 8 in flight,
#            and 8 x 1 (closed-loop clients) with N = 2,
#            with N = 2 and N = 1 workers (fork: the whole server pinned to
#            2 CPUs, then to 1 with taskset)
#   py       wsjobd and fastapi only: the same Python function (seed 000's
#            loop(), src/handlers/examples/cpu_loop.py), {"n":7,"k":K} for
#            each K in PY_KS, at 8 x 1 and 50 x 16 with N = 2, and 50 x 16
#            with N = 1; wsjobd runs it as --python pymodsum=cpu_loop:modsum,
#            FastAPI in its ProcessPoolExecutor.  A ping bench on another
#            connection runs beside the largest K at 50 x 16.
#
# Installs what it needs and is missing: the Debian packages python3-fastapi,
# python3-uvicorn, python3-websockets, python3-uvloop, python3-httptools
# (apt-get, with sudo when not root), and ws and piscina from npm into
# $BUILD/compare-node (nothing is written into the source tree).  A server
# whose requirements cannot be installed is skipped and said so.
#
# Prints a JSON line per figure on stdout as it goes:
#   {"bench":"compare","server":S,"case":C,"jobs_per_s":..,"p99_us":..,...}
# and a table at the end.  About four minutes with the defaults on two
# cores.  Exit status 1 if any case failed.
#
#   BUILD=build scripts/compare.sh           ($BUILD/wsjobd, $BUILD/wsjob,
#                                             $BUILD/libcore.a, $BUILD/libshm.a)
#   COMPARE_SERVERS="wsjobd fastapi node fork"
#   COMPARE_SECONDS=8 COMPARE_SHA_SECONDS=5 COMPARE_SHA_ROUNDS=2000
#   COMPARE_IDLE_CONNS=10000 COMPARE_PASSES=2
#   COMPARE_PY_SECONDS=5 COMPARE_PY_KS="1000 20000"
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
BUILD=${BUILD:-build}
WSJOBD=$BUILD/wsjobd
WSJOB=$BUILD/wsjob
CMP=$ROOT/scripts/compare
SERVERS=${COMPARE_SERVERS:-wsjobd fastapi node fork}
SECS=${COMPARE_SECONDS:-8}
SHA_SECS=${COMPARE_SHA_SECONDS:-5}
SHA_ROUNDS=${COMPARE_SHA_ROUNDS:-2000}
IDLE_CONNS=${COMPARE_IDLE_CONNS:-10000}
PASSES=${COMPARE_PASSES:-2}
PY_SECS=${COMPARE_PY_SECONDS:-5}
PY_KS=${COMPARE_PY_KS:-1000 20000}
IDLE_HOLD=4                  # seconds the idle connections stay up after connecting
START_LIMIT=20               # seconds a server may take to answer its first job
PY=/usr/bin/python3          # Debian's python3-* packages belong to this one
NODE_DIR=$BUILD/compare-node
FORK_BIN=$BUILD/compare/fork_server
SHA_INPUT="{\"data\":\"x\",\"rounds\":$SHA_ROUNDS}"

work=$(mktemp -d)
results=$work/results
: >"$results"
failed=0
SPID=""
pids=""

cleanup() {
    # TERM first: timeout(1) passes it on to the wsjob it runs.
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.2
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Reaped processes leave the list at once: their pids may be reused (a fork
# server alone goes through thousands), and cleanup must not hit a stranger.
forget() { pids=$(printf '%s\n' $pids | grep -vx "$1" | tr '\n' ' '); }

say() { printf 'compare: %s\n' "$*" >&2; }

for b in "$WSJOBD" "$WSJOB"; do
    [ -x "$b" ] || { say "$b is missing: run make first"; exit 2; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- what each server needs ---------------------------------------------------

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

need_fastapi() {
    local mods="import fastapi, uvicorn, websockets, uvloop, httptools"
    "$PY" -c "$mods" 2>/dev/null && return 0
    apt_install python3-fastapi python3-uvicorn python3-websockets python3-uvloop \
        python3-httptools || return 1
    "$PY" -c "$mods"
}

need_node() {
    local major piscina
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm || return 1
    fi
    [ -f "$NODE_DIR/node_modules/ws/package.json" ] &&
        [ -f "$NODE_DIR/node_modules/piscina/package.json" ] && return 0
    # piscina 5 wants Node 20; 4 runs on the Node 18 of older Debian releases.
    major=$(node -p 'process.versions.node.split(".")[0]')
    piscina=piscina@5
    [ "$major" -lt 20 ] && piscina=piscina@4
    say "npm install ws $piscina into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-save --no-package-lock --no-audit --no-fund \
        --loglevel=error ws@8 "$piscina" >&2
}

need_fork() {
    local libs
    [ -f "$BUILD/libcore.a" ] && [ -f "$BUILD/libshm.a" ] || { say "no $BUILD/libcore.a"; return 1; }
    [ -x "$FORK_BIN" ] && [ "$FORK_BIN" -nt "$CMP/fork_server.c" ] &&
        [ "$FORK_BIN" -nt "$BUILD/libcore.a" ] && return 0
    libs=$(sed -n 's/^LIBS *:= *//p' Makefile)   # the daemon's own link line
    mkdir -p "$(dirname "$FORK_BIN")"
    ${CC:-cc} -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -pthread -Iinclude -Ishm -Isrc \
        -o "$FORK_BIN" "$CMP/fork_server.c" "$BUILD/libcore.a" "$BUILD/libshm.a" $libs
}

# ---- starting and stopping servers ------------------------------------------------

# wait_port LOG PATTERN: the port the server printed, or nothing after START_LIMIT.
wait_port() {
    local i port
    for i in $(seq $((START_LIMIT * 10))); do
        port=$(sed -n "s/$2/\1/p" "$1" | head -1)
        [ -n "$port" ] && { echo "$port"; return 0; }
        kill -0 "$SPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start SERVER WORKERS: sets SPID (the process that holds the connections)
# and URL, and checks that the server computes the sha256 job right.
start() {
    local server=$1 n=$2 log=$work/$1.$2.log port="" i out cpus
    case $server in
    wsjobd)
        "$WSJOBD" --listen 127.0.0.1:0 --max-connections $((IDLE_CONNS + 100)) \
            --cpu-workers "$n" --python-path "$ROOT/src/handlers/examples" \
            --python pymodsum=cpu_loop:modsum </dev/null >/dev/null 2>"$log" &
        SPID=$!
        port=$(wait_port "$log" '.*ready.*port \([0-9]*\).*') ;;
    fastapi)
        "$PY" "$CMP/fastapi_server.py" --workers "$n" </dev/null >"$log" 2>&1 &
        SPID=$!
        port=$(wait_port "$log" '^port \([0-9]*\)$') ;;
    node)
        node "$CMP/node_server.mjs" --workers "$n" --modules "$NODE_DIR" </dev/null >"$log" 2>&1 &
        SPID=$!
        port=$(wait_port "$log" '^port \([0-9]*\)$') ;;
    fork)
        # No pool to size: N is the CPUs the server and its children may use.
        cpus=0-$((n - 1))
        taskset -c "$cpus" "$FORK_BIN" 0 </dev/null >"$log" 2>&1 &
        SPID=$!
        port=$(wait_port "$log" '^port \([0-9]*\)$') ;;
    esac
    pids="$pids $SPID"
    if [ -z "$port" ]; then
        say "$server did not start:"; cat "$log" >&2
        return 1
    fi
    URL=ws://127.0.0.1:$port
    for i in $(seq $((START_LIMIT * 4))); do
        out=$(timeout 10 "$WSJOB" --url "$URL" submit sha256 "$SHA_INPUT" 2>/dev/null) && break
        sleep 0.25
    done
    if [ "$out" != "$EXPECT" ]; then
        say "$server: sha256 gave '$out', not $EXPECT"; cat "$log" >&2
        return 1
    fi
}

stop() {
    local i
    kill -TERM "$SPID" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
    forget "$SPID"
}

# ---- figures --------------------------------------------------------------------

field() {   # field NAME < json line
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

emit() {    # emit JSON-FIELDS: one result line, to stdout and the results
    printf '{"bench":"compare",%s}\n' "$1" | tee -a "$results"
}

# throughput SERVER CASE WORKERS BENCH-ARGS...
throughput() {
    local server=$1 case=$2 n=$3 out rc
    shift 3
    say "$server: $case"
    out=$(timeout $((SECS + SHA_SECS + 60)) "$WSJOB" --url "$URL" bench --label "$case" "$@" 2>"$work/last.err")
    rc=$?
    if [ $rc -ne 0 ] || [ -z "$out" ]; then
        failed=1
        say "FAILED ($rc): $server $case"; cat "$work/last.err" >&2
    fi
    [ -n "$out" ] || return
    emit "\"server\":\"$server\",\"case\":\"$case\",\"workers\":$n,$(printf '%s' "$out" |
        sed 's/^{"bench":"e2e","case":"[^"]*",//; s/}$//'),\"ok\":$([ $rc -eq 0 ] && echo true || echo false)"
}

# Proportional set size of a process and all its descendants, in kB: what
# the connections cost whether one process holds them or one per connection
# (shared pages counted once, split among the processes sharing them).
tree_pss_kb() {
    local all=$1 frontier=$1
    # One cat a generation: a fork server has thousands of children.  The
    # unquoted $(printf) is globbed, which finds every thread's list.
    while [ -n "$frontier" ]; do
        frontier=$(cat $(printf '/proc/%s/task/*/children ' $frontier) 2>/dev/null)
        all="$all $frontier"
    done
    (cd /proc && cat $(printf '%s/smaps_rollup ' $all) 2>/dev/null) |
        awk '$1 == "Pss:" { s += $2 } END { print s + 0 }'
}

# Kernel memory that grows with processes rather than sockets (kernel
# stacks, page tables), in kB, system-wide: PSS does not see it.
kernel_proc_kb() {
    awk '$1 == "KernelStack:" || $1 == "PageTables:" { s += $2 } END { print s + 0 }' /proc/meminfo
}

established() {   # server-side connections on the port of URL
    ss -Htn state established "( sport = :${URL##*:} )" 2>/dev/null | wc -l
}

# idle SERVER: IDLE_CONNS idle WebSockets.  The bench reports the growth of
# the connection-holding process's RSS; the tree's PSS is read here while
# the connections are held.
idle() {
    local server=$1 case="idle $IDLE_CONNS" before after kbefore kafter i bpid out rc pss up conn_s rss
    say "$server: $case"
    sleep 0.5
    before=$(tree_pss_kb "$SPID")
    kbefore=$(kernel_proc_kb)
    timeout $((IDLE_HOLD + 60)) "$WSJOB" --url "$URL" bench --label "$case" --idle "$IDLE_CONNS" --hold "$IDLE_HOLD" \
        --pid "$SPID" >"$work/idle.out" 2>"$work/last.err" &
    bpid=$!
    pids="$pids $bpid"
    for i in $(seq 400); do   # the bench gives up after 30 s of connecting
        up=$(established)
        [ "$up" -ge "$IDLE_CONNS" ] && break
        kill -0 "$bpid" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    after=$(tree_pss_kb "$SPID")
    kafter=$(kernel_proc_kb)
    wait "$bpid"
    rc=$?
    forget "$bpid"
    out=$(cat "$work/idle.out")
    if [ $rc -ne 0 ] || [ -z "$out" ] || [ "$up" -lt "$IDLE_CONNS" ]; then
        failed=1
        say "FAILED ($rc, $up connections up): $server $case"; cat "$work/last.err" >&2
    fi
    [ -n "$out" ] || return
    pss=$(( (after - before) * 1024 / IDLE_CONNS ))
    conn_s=$(printf '%s' "$out" | field connect_s)
    rss=$(printf '%s' "$out" | field rss_per_conn_bytes)
    emit "\"server\":\"$server\",\"case\":\"$case\",\"conns\":$IDLE_CONNS,\"connect_s\":${conn_s:-null},\"rss_per_conn_bytes\":${rss:-null},\"pss_per_conn_bytes\":$pss,\"kernel_proc_per_conn_bytes\":$(( (kafter - kbefore) * 1024 / IDLE_CONNS )),\"pss_before_kb\":$before,\"pss_after_kb\":$after,\"ok\":$([ $rc -eq 0 ] && echo true || echo false)"
    # Let the server finish closing them before the next case.
    for i in $(seq 100); do [ "$(established)" -eq 0 ] && break; sleep 0.1; done
}

need_server() {
    case $1 in
    fastapi) need_fastapi ;;
    node) need_node ;;
    fork) need_fork ;;
    wsjobd) true ;;
    *) say "unknown server $1"; return 1 ;;
    esac
}

py_expect() { "$PY" -c 'import sys; print(sum((i * 7) % 97 for i in range(int(sys.argv[1]))))' "$1"; }

# pyloop SERVER WORKERS SHAPES: the Python function at each K and shape
# ("8x1" or "50x16"); a ping bench beside the last K's 50x16.
pyloop() {
    local server=$1 n=$2 shapes=$3 k shape last ppid pout
    case $server in wsjobd|fastapi) ;; *) return ;; esac
    last=${PY_KS##* }
    for k in $PY_KS; do
        for shape in $shapes; do
            ppid=""
            if [ "$k" = "$last" ] && [ "$shape" = 50x16 ]; then
                pout=$work/ping.out
                "$WSJOB" --url "$URL" bench --ping -d "$PY_SECS" >"$pout" 2>/dev/null &
                ppid=$!
                pids="$pids $ppid"
            fi
            throughput "$server" "py k$k $shape ${n}w" "$n" --type pymodsum \
                --input "{\"n\":7,\"k\":$k}" --expect "$(py_expect "$k")" \
                -c "${shape%x*}" -p "${shape#*x}" -d "$PY_SECS" --warmup 1
            [ -n "$ppid" ] || continue
            wait "$ppid"
            forget "$ppid"
            emit "\"server\":\"$server\",\"case\":\"ping during py k$k 50x16\",\"p50_us\":$(field p50_us <"$pout"),\"p99_us\":$(field p99_us <"$pout")"
        done
    done
}

# run_server SERVER PASS: the idle case in the first pass only.
run_server() {
    local s=$1 pass=$2
    start "$s" 2 || { failed=1; stop; return; }
    [ "$pass" -eq 1 ] && idle "$s"
    throughput "$s" "echo 64B 50x16" 2 --raw echo --size 64 -c 50 -p 16 -d "$SECS" --warmup 1
    throughput "$s" "sha256 r$SHA_ROUNDS 2w" 2 --type sha256 --input "$SHA_INPUT" \
        --expect "$EXPECT" -c 8 -p 8 -d "$SHA_SECS" --warmup 1
    # Closed-loop clients, one job each in flight: how most clients behave.
    throughput "$s" "sha256 r$SHA_ROUNDS 2w 8x1" 2 --type sha256 --input "$SHA_INPUT" \
        --expect "$EXPECT" -c 8 -p 1 -d "$SHA_SECS" --warmup 1
    pyloop "$s" 2 "8x1 50x16"
    stop
    start "$s" 1 || { failed=1; stop; return; }
    throughput "$s" "sha256 r$SHA_ROUNDS 1w" 1 --type sha256 --input "$SHA_INPUT" \
        --expect "$EXPECT" -c 8 -p 8 -d "$SHA_SECS" --warmup 1
    pyloop "$s" 1 "50x16"
    stop
}

# ---- the table ------------------------------------------------------------------

cell() {    # cell SERVER CASE FIELD: the mean over the passes
    grep -F "\"server\":\"$1\",\"case\":\"$2\"" "$results" | field "$3" |
        awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }'
}

table() {
    local s c
    echo
    printf '%-8s | %-26s | %-26s | %-26s | %s\n' "server" "echo 64B 50x16" \
        "sha256 r$SHA_ROUNDS, 2 workers" "sha256 r$SHA_ROUNDS, 1 worker" \
        "idle $IDLE_CONNS: bytes/conn"
    printf '%-8s | %-26s | %-26s | %-26s | %s\n' "" "msgs/s (p99 us)" \
        "jobs/s (p99 us)" "jobs/s (p99 us)" "PSS tree (RSS main) +kernel"
    for s in $SERVERS; do
        printf '%-8s' "$s"
        for c in "echo 64B 50x16" "sha256 r$SHA_ROUNDS 2w" "sha256 r$SHA_ROUNDS 1w"; do
            printf ' | %-26s' "$(cell "$s" "$c" jobs_per_s) ($(cell "$s" "$c" p99_us))"
        done
        printf ' | %s (%s) +%s\n' "$(cell "$s" "idle $IDLE_CONNS" pss_per_conn_bytes)" \
            "$(cell "$s" "idle $IDLE_CONNS" rss_per_conn_bytes)" \
            "$(cell "$s" "idle $IDLE_CONNS" kernel_proc_per_conn_bytes)"
    done
    echo
    echo "sha256 r$SHA_ROUNDS, 2 workers, 8 clients x 1 in flight: jobs/s (p50 / p99 us)"
    for s in $SERVERS; do
        printf '%-8s %s (%s / %s)\n' "$s" "$(cell "$s" "sha256 r$SHA_ROUNDS 2w 8x1" jobs_per_s)" \
            "$(cell "$s" "sha256 r$SHA_ROUNDS 2w 8x1" p50_us)" "$(cell "$s" "sha256 r$SHA_ROUNDS 2w 8x1" p99_us)"
    done
    echo "Throughput: mean of $PASSES passes (servers in one order, then the reverse)."
    echo "fork: N = CPUs the server may use (taskset); RSS main is its parent alone."
    echo "+kernel: kernel stacks and page tables (per process, not per socket), system-wide."
    py_table
}

py_table() {
    local s k c
    echo
    echo "The same Python function (seed 000's loop), jobs/s (p50 / p99 us):"
    for s in wsjobd fastapi; do
        case " $SERVERS " in *" $s "*) ;; *) continue ;; esac
        for k in $PY_KS; do
            printf '%-8s k=%-6s' "$s" "$k"
            for c in "8x1 2w" "50x16 2w" "50x16 1w"; do
                printf ' | %s %s (%s / %s)' "$c" "$(cell "$s" "py k$k $c" jobs_per_s)" \
                    "$(cell "$s" "py k$k $c" p50_us)" "$(cell "$s" "py k$k $c" p99_us)"
            done
            echo
        done
        printf '%-8s ping p50 / p99 us while k=%s 50x16 runs: %s / %s\n' "$s" "${PY_KS##* }" \
            "$(cell "$s" "ping during py k${PY_KS##* } 50x16" p50_us)" \
            "$(cell "$s" "ping during py k${PY_KS##* } 50x16" p99_us)"
    done
}

loadavg() { cut -d' ' -f1 /proc/loadavg; }

started=$(date +%s)
load_start=$(loadavg)
if awk -v l="$load_start" 'BEGIN { exit !(l > 0.5) }'; then
    say "warning: load average $load_start at the start: something else is using the CPUs, figures will be low and noisy"
fi
EXPECT=$(python3 -c '
import hashlib, sys
h = hashlib.sha256(b"x").hexdigest()
for _ in range(int(sys.argv[1]) - 1):
    h = hashlib.sha256(h.encode()).hexdigest()
print(h)' "$SHA_ROUNDS") || { say "python3 is needed for the expected sha256"; exit 2; }
ready=""
for s in $SERVERS; do
    if need_server "$s"; then
        ready="$ready $s"
    else
        say "$s: requirements could not be installed: skipped"
        failed=1
    fi
done
# This machine's speed drifts by several per cent over minutes, so each
# server is measured twice, in opposite orders, and the table shows means.
reverse=$(printf '%s\n' $ready | tac | tr '\n' ' ')
for pass in $(seq "$PASSES"); do
    order=$ready
    [ $((pass % 2)) -eq 0 ] && order=$reverse
    for s in $order; do
        run_server "$s" "$pass"
    done
done
emit "\"server\":\"host\",\"case\":\"host\",\"cpus\":$(nproc),\"loadavg_start\":$load_start,\"loadavg_end\":$(loadavg)"
table
echo "load average $load_start at the start, $(loadavg) at the end, on $(nproc) CPUs."
say "done in $(( $(date +%s) - started )) s"
exit $failed
