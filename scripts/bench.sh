#!/bin/bash
# bench.sh — `make bench`: every benchmark of the project in one run, a
# few minutes on a small machine.  Starts its own daemons on loopback ports
# the kernel picks, stops them, prints one JSON line per figure as it goes
# and a table at the end.  Exit status 1 if any case failed.
#
#   BUILD=build scripts/bench.sh          ($BUILD/wsjobd, $BUILD/wsjob)
#   BENCH_SECONDS=10 BENCH_THREADS=1      throughput run length, client threads
#   BENCH_SHA_ROUNDS=2000                 work per job of the scaling case
#   BENCH_ONLY=hostile|sweep|dashboard|detach   only the hostile section,
#                                         the concurrency sweep, echo with
#                                         0 vs 100 open dashboards, or
#                                         detached jobs beside plain ones
#   BENCH_DASHBOARD_ROUNDS=5              rounds of the dashboard comparison
#   BENCH_SWEEP_ROUNDS=3                  rounds of the concurrency sweep (medians)
#   BENCH_DETACH_ROUNDS=5                 rounds of the detached-job section (medians)
set -u

BUILD=${BUILD:-build}
WSJOBD=$BUILD/wsjobd
WSJOB=$BUILD/wsjob
SECS=${BENCH_SECONDS:-10}
THREADS=${BENCH_THREADS:-1}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
SHA_ROUNDS=${BENCH_SHA_ROUNDS:-2000}
LONG_MODSUM='{"n":1,"iterations":100000000000}'

PIN_DAEMON="" PIN_CLIENT=""   # taskset prefixes, set by cases that pin
work=$(mktemp -d)
results=$work/results
: >"$results"
failed=0
pids=""

cleanup() {
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench: %s\n' "$*" >&2; }

for b in "$WSJOBD" "$WSJOB"; do
    [ -x "$b" ] || { say "$b is missing: run make first"; exit 2; }
done

# 10,000 client sockets and as many in the daemon: raise the descriptor
# limit for both (as far as the hard limit allows without privileges).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- daemons ----------------------------------------------------------------

# start_daemon ARGS...: sets DPID and URL.
start_daemon() {
    local log=$work/wsjobd.$$.$RANDOM.log i
    $PIN_DAEMON "$WSJOBD" --listen 127.0.0.1:0 --max-connections $((IDLE_CONNS + 100)) "$@" \
        </dev/null >/dev/null 2>"$log" &
    DPID=$!
    pids="$pids $DPID"
    for i in $(seq 100); do
        if grep -q ' ready: ' "$log" && grep -q '(port [0-9]*)' "$log"; then
            URL=ws://127.0.0.1:$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$log" | head -1)
            return 0
        fi
        kill -0 "$DPID" 2>/dev/null || break
        sleep 0.1
    done
    say "wsjobd $* did not start:"; cat "$log" >&2
    exit 1
}

stop_daemon() {
    kill -TERM "$DPID" 2>/dev/null
    wait "$DPID" 2>/dev/null
}

# ---- running a case -----------------------------------------------------------

# bench LABEL ARGS...: one `wsjob bench`; its JSON line goes to stdout and
# to the results, its human summary to the log (shown when it fails).
bench() {
    local label=$1 out rc
    shift
    say "$label"
    out=$($PIN_CLIENT "$WSJOB" --url "$URL" bench --label "$label" -t "$THREADS" "$@" 2>"$work/last.err")
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out" | tee -a "$results"
    if [ $rc -ne 0 ]; then
        failed=1
        say "FAILED ($rc): $label"; cat "$work/last.err" >&2
    fi
    return $rc
}

# busy_cpu_workers: how many CPU workers are running a job right now.
busy_cpu_workers() {
    "$WSJOB" --url "$URL" stats --json 2>/dev/null | grep -o '"class":"cpu","state":"busy"' | wc -l
}

cpu_workers() {
    "$WSJOB" --url "$URL" stats --json 2>/dev/null | grep -o '"class":"cpu"' | wc -l
}

# ---- the cases --------------------------------------------------------------------

ring_case() {
    local b=$BUILD/tests/bench_ring
    if [ ! -x "$b" ]; then
        say "ring: $b not built, skipped"
        return
    fi
    say "ring: $b"
    if ! timeout 120 "$b" | grep '^{' | tee -a "$results"; then
        failed=1
        say "FAILED: $b"
    fi
}

echo_cases() {
    bench "echo 64B 50x16" --raw echo --size 64 -c 50 -p 16 -d "$SECS" --warmup 1
    bench "echo 64B 1x1" --raw echo --size 64 -c 1 -p 1 -d 5 --warmup 0.5
}

yardstick_case() {
    local echo_bin=$BUILD/tests/bench_tcp_echo line port
    if [ ! -x "$echo_bin" ]; then
        say "yardstick: $echo_bin not built, skipped"
        return
    fi
    "$echo_bin" 0 300 >"$work/echo.port" &
    local epid=$!
    pids="$pids $epid"
    for i in $(seq 50); do grep -q port "$work/echo.port" && break; sleep 0.1; done
    port=$(sed -n 's/^port //p' "$work/echo.port")
    URL=ws://127.0.0.1:$port bench "tcp echo 64B 50x16" --tcp-echo --size 64 -c 50 -p 16 \
        -d "$SECS" --warmup 1
    kill -TERM "$epid"
    wait "$epid" 2>/dev/null
}

sha_cases() {
    local one x2000
    one=$("$WSJOB" --url "$URL" submit sha256 '{"data":"x","rounds":1}')
    bench "sha256 r1 json 50x16" --type sha256 --input '{"data":"x","rounds":1}' \
        --expect "$one" -c 50 -p 16 -d 5 --warmup 1
}

# Twice each, alternating, so a slow spell of this shared machine does not
# land on one side of the ratio only; the table shows the means.
scaling_cases() {
    local w r expect input="{\"data\":\"x\",\"rounds\":$SHA_ROUNDS}"
    for r in 1 2; do
        for w in 1 2; do
            start_daemon --cpu-workers "$w"
            expect=$("$WSJOB" --url "$URL" submit sha256 "$input")
            bench "sha256 r$SHA_ROUNDS ${w}w" --type sha256 --input "$input" \
                --expect "$expect" -c 8 -p 8 -d 5 --warmup 1
            stop_daemon
        done
    done
}

# sha256_vs_openssl: the chain's cost per round (one hash of 64 bytes), from
# one long job on one worker, beside `openssl speed` on the same CPU: its
# cost per 64-byte message through EVP and per block in bulk.
openssl_ns_per_64B() {   # openssl_ns_per_64B BUFFER_BYTES
    openssl speed -seconds 2 -bytes "$1" -evp sha256 2>/dev/null |
        awk '$1 == "sha256" { sub("k", "", $NF); printf "%.1f", 64e9 / ($NF * 1000) }'
}

sha256_vs_openssl_case() {
    local rounds=5000000 us chain_ns m64 bulk
    bench "sha256 chain r$rounds" --type sha256 --input "{\"data\":\"x\",\"rounds\":$rounds}" \
        -c 1 -p 1 -n 2 || return
    us=$(line_of "sha256 chain r$rounds" | field p50_us)
    chain_ns=$(awk -v us="$us" -v r="$rounds" 'BEGIN { printf "%.1f", us * 1000 / r }')
    if ! command -v openssl >/dev/null; then
        say "openssl not installed: no comparison"
        return
    fi
    # `openssl speed` prints thousands of bytes a second, last column: ns
    # per 64 bytes is 64e9 / (that * 1000).
    m64=$(openssl_ns_per_64B 64)
    bulk=$(openssl_ns_per_64B 16384)
    printf '{"bench":"sha256_vs_openssl","chain_ns_per_round":%s,"openssl_evp_ns_per_64B_message":%s,"openssl_bulk_ns_per_64B_block":%s}\n' \
        "$chain_ns" "${m64:-null}" "${bulk:-null}" | tee -a "$results"
}

sleep_cases() {
    bench "10 sleeps 1s" --type sleep --input '{"ms":1000}' --expect "slept 1000" -c 10 -p 1 -n 10
    stop_daemon
    start_daemon --io-threads 100
    bench "100 sleeps 1s" --type sleep --input '{"ms":1000}' --expect "slept 1000" -c 100 -p 1 -n 100
    stop_daemon
}

ping_cases() {
    local n i p busy spids=""
    bench "ping idle" --ping --rate 100 -d 3
    n=$(cpu_workers)
    for i in $(seq "$n"); do
        "$WSJOB" --url "$URL" submit modsum "$LONG_MODSUM" >/dev/null 2>&1 &
        spids="$spids $!"
    done
    pids="$pids $spids"
    for i in $(seq 50); do
        busy=$(busy_cpu_workers)
        [ "$busy" -ge "$n" ] && break
        sleep 0.1
    done
    bench "ping cpu saturated" --ping --rate 100 -d 5
    busy=$(busy_cpu_workers)
    [ "$busy" -ge "$n" ] || say "warning: only $busy of $n CPU workers were busy at the end"
    # Ctrl-C for each: wsjob cancels its job and waits for the answer.
    for p in $spids; do kill -INT "$p" 2>/dev/null; done
    for i in $(seq 100); do
        busy=0
        for p in $spids; do kill -0 "$p" 2>/dev/null && busy=1; done
        [ $busy -eq 0 ] && break
        sleep 0.1
    done
    for p in $spids; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}

idle_case() {
    start_daemon
    sleep 0.5
    bench "$IDLE_CONNS idle websockets" --idle "$IDLE_CONNS" --pid "$DPID"
    stop_daemon
}

# ---- the dashboard's cost: echo throughput with 0 and with 100 live feeds -----------

DASH_VIEWERS=100

# Rounds alternate the two cases on one daemon, each round in the other
# order (ABBA), so drift on a shared machine hits both alike.  The viewers
# read every snapshot, as browsers would.  Beside throughput, each run
# records the front's CPU time per job, which other load on the machine
# disturbs far less than it does throughput.
# With the daemon on one CPU and the clients on the other, runs differ by a
# few percent; unpinned, this machine's two CPUs gave two modes 40 % apart
# (which process shares a CPU with which), far more than the 5 % to resolve.
dashboard_cases() {
    local round port
    if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
        PIN_DAEMON="taskset -c 0" PIN_CLIENT="taskset -c 1"
    fi
    start_daemon --cpu-workers 1
    port=${URL##*:}
    dashboard_idle_case "$port"
    for round in $(seq "${BENCH_DASHBOARD_ROUNDS:-5}"); do
        if [ $((round % 2)) -eq 1 ]; then
            dashboard_echo 0 "$port"
            dashboard_echo "$DASH_VIEWERS" "$port"
        else
            dashboard_echo "$DASH_VIEWERS" "$port"
            dashboard_echo 0 "$port"
        fi
    done
    stop_daemon
    PIN_DAEMON="" PIN_CLIENT=""
}

# dashboard_echo VIEWERS PORT: one echo run with that many live feeds open.
dashboard_echo() {
    local n=$1 port=$2 vpid="" c0 c1 jobs label="echo 64B 50x16, $1 dashboards"
    if [ "$n" -gt 0 ]; then
        : >"$work/viewers.err"
        $PIN_CLIENT /usr/bin/python3 scripts/dashboard_viewers.py "$port" "$n" "$((SECS + 2))" \
            >>"$results" 2>"$work/viewers.err" &
        vpid=$!
        pids="$pids $vpid"
        for i in $(seq 300); do grep -q connected "$work/viewers.err" && break; sleep 0.1; done
        grep -q connected "$work/viewers.err" || { say "viewers did not connect:"; cat "$work/viewers.err" >&2; failed=1; }
    fi
    c0=$(front_cpu_ms)
    bench "$label" --raw echo --size 64 -c 50 -p 16 -d "$SECS" --warmup 1
    c1=$(front_cpu_ms)
    jobs=$(grep -F "\"case\":\"$label\"" "$results" | tail -1 | field jobs)
    printf '{"bench":"dashboard_front_cpu","case":"%s","front_cpu_ns_per_job":%s}\n' "$label" \
        "$(awk -v ms=$((c1 - c0)) -v j="${jobs:-0}" 'BEGIN { printf "%.0f", j ? ms * 1e6 / j : 0 }')" |
        tee -a "$results"
    if [ -n "$vpid" ]; then
        wait "$vpid" || { say "FAILED: dashboard viewers"; cat "$work/viewers.err" >&2; failed=1; }
    fi
}

# Medians: on a shared machine one run can lose half its throughput to a
# neighbour, and a mean would carry that into the comparison.
median() {   # median < numbers, one a line
    sort -n | awk '{ v[n++] = $1 } END { if (n) printf "%.0f", n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }'
}

median_of() {   # median_of BENCH CASE FIELD: over every line of that bench and case
    grep -F "\"bench\":\"$1\"" "$results" | grep -F "\"case\":\"$2\"" | field "$3" | median
}

# front_cpu_ms: CPU time the front process has used, user and system.
front_cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$DPID/stat"
}

# The feed's own cost, free of the noise a throughput run picks up on a
# shared machine: the front's CPU time over 20 s of an idle daemon, with no
# viewer and then with DASH_VIEWERS.
dashboard_idle_case() {
    local port=$1 a b c d
    say "front CPU, idle, 0 and $DASH_VIEWERS dashboards"
    sleep 1
    a=$(front_cpu_ms); sleep 20; b=$(front_cpu_ms)
    /usr/bin/python3 scripts/dashboard_viewers.py "$port" "$DASH_VIEWERS" 20 \
        >>"$results" 2>"$work/viewers.err" &
    vpid=$!
    pids="$pids $vpid"
    for i in $(seq 300); do grep -q connected "$work/viewers.err" && break; sleep 0.1; done
    c=$(front_cpu_ms)
    wait "$vpid" || { say "FAILED: dashboard viewers"; cat "$work/viewers.err" >&2; failed=1; }
    d=$(front_cpu_ms)
    printf '{"bench":"dashboard_idle_cpu","viewers":%d,"front_cpu_ms_per_s_0":%s,"front_cpu_ms_per_s_viewers":%s}\n' \
        "$DASH_VIEWERS" "$(awk -v x=$((b - a)) 'BEGIN { printf "%.2f", x / 20 }')" \
        "$(awk -v x=$((d - c)) 'BEGIN { printf "%.2f", x / 20 }')" | tee -a "$results"
}

dashboard_table() {
    local a b v
    a=$(median_of e2e "echo 64B 50x16, 0 dashboards" jobs_per_s)
    b=$(median_of e2e "echo 64B 50x16, $DASH_VIEWERS dashboards" jobs_per_s)
    [ -n "$a" ] && [ -n "$b" ] || return
    v=$(grep '"bench":"dashboard_viewers"' "$results" | sed -n 's/.*"messages_per_viewer_per_s":\([0-9.]*\).*/\1/p' | tr '\n' ' ')
    row "echo 50x16: 0 / $DASH_VIEWERS dashboards" "median $a / $b jobs/s ($(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.1f %%", (b - a) * 100 / a }')); feed messages per viewer per s: $v"
    a=$(median_of dashboard_front_cpu "echo 64B 50x16, 0 dashboards" front_cpu_ns_per_job)
    b=$(median_of dashboard_front_cpu "echo 64B 50x16, $DASH_VIEWERS dashboards" front_cpu_ns_per_job)
    [ -n "$a" ] && [ -n "$b" ] && row "  front CPU per echo job" "median $a / $b ns"
    a=$(grep '"bench":"dashboard_idle_cpu"' "$results" | tail -1)
    [ -n "$a" ] && row "front CPU, idle: 0 / $DASH_VIEWERS dashboards" "$(printf '%s' "$a" | field front_cpu_ms_per_s_0) / $(printf '%s' "$a" | field front_cpu_ms_per_s_viewers) ms per s"
}

# ---- concurrency sweep: closed-loop clients, one job in flight each ------------------

SWEEP_CLIENTS="1 2 4 8 16 64"
SWEEP_ROUNDS=${BENCH_SWEEP_ROUNDS:-3}

# start_yardstick: the TCP echo yardstick in the background; sets YPORT, YPID.
start_yardstick() {
    local echo_bin=$BUILD/tests/bench_tcp_echo i
    YPORT=""
    [ -x "$echo_bin" ] || { say "yardstick: $echo_bin not built, skipped"; return 1; }
    "$echo_bin" 0 300 >"$work/echo.port" &
    YPID=$!
    pids="$pids $YPID"
    for i in $(seq 50); do grep -q port "$work/echo.port" && break; sleep 0.1; done
    YPORT=$(sed -n 's/^port //p' "$work/echo.port")
}

# sweep_ping W: a quiet client pinging 100 times a second during the step's
# measured 3 s (it starts after the step's warm-up).
sweep_ping() {
    sleep 0.7
    bench "sweep ping during sha256 ${1}w 64x1" --ping --rate 100 -d 2
}

sweep_cases() {
    local r
    for r in $(seq "$SWEEP_ROUNDS"); do
        say "sweep: round $r of $SWEEP_ROUNDS"
        sweep_round
    done
}

# One round: every step once.  Rounds repeat the whole sweep, so that a slow
# spell of the machine lands on a step once, not on all its runs.
sweep_round() {
    local w c input="{\"data\":\"abc\",\"rounds\":$SHA_ROUNDS}" expect shape ping_pid
    for w in 1 2; do
        start_daemon --cpu-workers "$w"
        expect=$("$WSJOB" --url "$URL" submit sha256 "$input")
        for c in $SWEEP_CLIENTS; do
            # The largest step also measures a quiet client's ping beside it:
            # the front must stay responsive while every worker is saturated.
            ping_pid=""
            if [ "$c" = 64 ]; then
                sweep_ping "$w" &
                ping_pid=$!
            fi
            bench "sweep sha256 ${w}w ${c}x1" --raw sha256 --input "$input" --expect "$expect" \
                -c "$c" -p 1 -d 3 --warmup 0.5
            [ -n "$ping_pid" ] && wait "$ping_pid"
        done
        bench "sweep sha256 ${w}w 8x8" --raw sha256 --input "$input" --expect "$expect" \
            -c 8 -p 8 -d 3 --warmup 0.5
        stop_daemon
    done
    start_daemon
    for shape in 1x1 10x1 50x1 50x16; do
        bench "sweep echo $shape" --raw echo --size 64 -c "${shape%x*}" -p "${shape#*x}" -d 3 --warmup 0.5
    done
    stop_daemon
    start_yardstick || return
    for shape in 1x1 10x1 50x1 50x16; do
        URL=ws://127.0.0.1:$YPORT bench "sweep tcp echo $shape" --tcp-echo --size 64 \
            -c "${shape%x*}" -p "${shape#*x}" -d 3 --warmup 0.5
    done
    kill -TERM "$YPID"
    wait "$YPID" 2>/dev/null
}

ratio() {   # ratio A B: A / B to two places, or ? when either is missing
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "?"; else printf "%.2f", a / b }'
}

# Medians over the rounds, and the ratios the sweep is judged by.
sweep_table() {
    local w c a b l best v low lowat
    for w in 1 2; do
        l="" best="" low="" lowat=""
        for c in $SWEEP_CLIENTS; do
            v=$(case_median "sweep sha256 ${w}w ${c}x1" jobs_per_s)
            l="$l ${c}x1 ${v%.*}"
            # The lowest step against the best of the smaller ones.
            if [ -n "$best" ] && [ -n "$v" ]; then
                a=$(ratio "$v" "$best")
                if [ -z "$low" ] || awk -v x="$a" -v y="$low" 'BEGIN { exit !(x < y) }'; then
                    low=$a lowat=${c}x1
                fi
            fi
            if [ -n "$v" ] && { [ -z "$best" ] || awk -v x="$v" -v y="$best" 'BEGIN { exit !(x > y) }'; }; then
                best=$v
            fi
        done
        v=$(case_median "sweep sha256 ${w}w 8x8" jobs_per_s)
        row "sweep sha256 r$SHA_ROUNDS ${w}w (jobs/s)" "$l  8x8 ${v%.*}"
        row "  lowest step / best smaller" "${low:-?} (at ${lowat:-?})"
        [ -n "$(line_of "sweep ping during sha256 ${w}w 64x1")" ] &&
            row "  ping rtt during ${w}w 64x1" "p50 $(case_median "sweep ping during sha256 ${w}w 64x1" p50_us) us  p99 $(case_median "sweep ping during sha256 ${w}w 64x1" p99_us) us (medians)"
    done
    row "sweep 2w 8x1 / 1w 8x8" "$(ratio "$(case_median "sweep sha256 2w 8x1" jobs_per_s)" "$(case_median "sweep sha256 1w 8x8" jobs_per_s)")"
    for c in 1x1 10x1 50x1 50x16; do
        a=$(case_median "sweep echo $c" jobs_per_s)
        b=$(case_median "sweep tcp echo $c" jobs_per_s)
        [ -n "$a" ] || continue
        row "sweep echo 64B $c" "${a%.*} msgs/s p50 $(case_median "sweep echo $c" p50_us) us; tcp yardstick ${b%.*} msgs/s p50 $(case_median "sweep tcp echo $c" p50_us) us; rate $(ratio "$a" "$b")x, p50 $(ratio "$(case_median "sweep echo $c" p50_us)" "$(case_median "sweep tcp echo $c" p50_us)")x"
    done
    row "sweep rounds" "$SWEEP_ROUNDS (medians; BENCH_SWEEP_ROUNDS)"
}

# ---- hostile: a quiet client's ping and the front's memory under abuse ------------------

front_rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# hostile_case LABEL LOAD-ARGS...: runs scripts/hostile_load.py in the
# background, measures a quiet client's pings beside it, then records the
# front's RSS growth (peak, sampled every 100 ms) as a JSON line.
hostile_case() {
    local label=$1 lpid rss0 peak now
    shift
    rss0=$(front_rss_kib "$DPID")
    /usr/bin/python3 scripts/hostile_load.py "$@" >"$work/load.out" 2>&1 &
    lpid=$!
    pids="$pids $lpid"
    sleep 1                                    # let the load build up
    peak=$rss0
    ( while kill -0 "$lpid" 2>/dev/null; do front_rss_kib "$DPID"; sleep 0.1; done ) >"$work/rss" &
    bench "ping, $label" --ping --rate 200 -d 4
    wait "$lpid" 2>/dev/null
    for now in $(cat "$work/rss"); do [ "$now" -gt "$peak" ] && peak=$now; done
    say "$(cat "$work/load.out")"
    printf '{"bench":"hostile","case":"rss, %s","front_rss_growth_kib":%d,"load":"%s"}\n' \
        "$label" $((peak - rss0)) "$(tr -d '"\n' <"$work/load.out")" | tee -a "$results"
}

hostile_cases() {
    local certs=$work/certs tls_port
    start_daemon
    hostile_case "ping flood" ping-flood "${URL##*:}" 6
    stop_daemon
    if sh tests/certs/make_certs.sh "$certs" >/dev/null 2>&1; then
        tls_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        start_daemon --tls-listen "127.0.0.1:$tls_port" --tls-cert "$certs/server.pem" \
            --tls-key "$certs/server.key"
        hostile_case "tls handshake storm" tls-storm "$tls_port" 6 8
        stop_daemon
    else
        say "hostile: cannot make test certificates (openssl), TLS storm skipped"
    fi
    start_daemon --queue-depth 8 --cpu-workers 1
    hostile_case "full ring, 100 waiting" full-ring "${URL##*:}" 6 100
    stop_daemon
}

# ---- detached jobs: the same short jobs with and without "detach":true -------------------

# Each detached job is held until its result's TTL ends: 1 s here, and room
# for every job of a run, so no submit is refused.  Plain and detached runs
# alternate, BENCH_DETACH_ROUNDS times, so a slow spell of the machine does
# not land on one side only; the table shows medians, of each side and of
# the rounds' own ratios (pair_pct).  Beside the client's
# jobs/s, the CPU time per job of the front and of the whole daemon (front
# and workers: what serving a job costs), exact to the nanosecond from
# /proc/PID/task/*/schedstat, which the client's share of the two cores
# does not blur.  Jobs of no work (echo, sha256 of one round) show the
# store's cost at its largest; sha256 x2000 (~0.2 ms) is a short real job.
DETACH_SHAPES="50x16 1x1"
DETACH_ROUNDS=${BENCH_DETACH_ROUNDS:-5}

cpu_ns() {   # cpu_ns PID...: CPU time of every thread of the processes
    local p
    for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null; done |
        awk '{ s += $1 } END { printf "%.0f", s }'
}

# detach_bench LABEL JOBS ARGS...: one run of JOBS jobs, and the CPU time
# per job as its own JSON line.  The time is read once the run's results
# have expired (TTL 1 s, ending at most 100 ms late): freeing them is part
# of what the jobs cost, and must not land in the next run.
detach_bench() {
    local label=$1 n=$2 f0 f1 d0 d1 kids
    shift 2
    kids=$(pgrep -P "$DPID" | tr '\n' ' ')
    f0=$(cpu_ns "$DPID"); d0=$(cpu_ns "$DPID" $kids)
    bench "$label" -n "$n" "$@" || return
    sleep 1.3
    f1=$(cpu_ns "$DPID"); d1=$(cpu_ns "$DPID" $kids)
    printf '{"bench":"front_cpu","case":"%s","us_per_job":%s,"daemon_us_per_job":%s}\n' "$label" \
        "$(awk -v a="$f0" -v b="$f1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / 1000 / n }')" \
        "$(awk -v a="$d0" -v b="$d1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / 1000 / n }')" |
        tee -a "$results"
}

# The detached run follows an unmeasured one of the same shape: what is
# measured is the steady state, where expired jobs' records serve the next
# ones.  The first burst after a quiet spell (spare records go back to
# malloc after 10 s unused) also pays for its records' memory: a page
# fault per dozen records, 11 us each on the VM of the README.
detach_pair() {   # detach_pair LABEL JOBS ARGS...: plain, then detached
    local label=$1 n=$2 d
    shift 2
    $PIN_CLIENT "$WSJOB" --url "$URL" bench -n "$n" "$@" --detach >/dev/null 2>&1
    sleep 1.3
    for d in "" " detach"; do
        detach_bench "$label$d" "$n" "$@" ${d:+--detach}
    done
}

detach_cases() {
    local r t shape input expect n sha_in="{\"data\":\"x\",\"rounds\":$SHA_ROUNDS}"
    start_daemon --max-detached 1000000 --result-ttl 1
    for r in $(seq "$DETACH_ROUNDS"); do
        for t in echo sha256; do
            input=x
            [ "$t" = sha256 ] && input='{"data":"x","rounds":1}'
            expect=$("$WSJOB" --url "$URL" submit "$t" "$input")
            for shape in $DETACH_SHAPES; do
                n=300000
                [ "$shape" = 1x1 ] && n=20000
                detach_pair "json $t $shape" "$n" --type "$t" --input "$input" \
                    --expect "$expect" -c "${shape%x*}" -p "${shape#*x}"
            done
        done
        expect=$("$WSJOB" --url "$URL" submit sha256 "$sha_in")
        detach_pair "json sha256 r$SHA_ROUNDS 8x8" 20000 --type sha256 --input "$sha_in" \
            --expect "$expect" -c 8 -p 8
    done
    stop_daemon
}

median_g() {   # median_g < numbers, one a line: decimals kept
    sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.10g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

case_median() {   # case_median CASE FIELD: over every run of the case, decimals kept
    grep -F "\"case\":\"$1\"" "$results" | grep -F "\"$2\":" | field "$2" | median_g
}

detach_table() {
    local c a b ca cb da db pa pb
    for c in "json echo 50x16" "json echo 1x1" "json sha256 50x16" "json sha256 1x1" \
             "json sha256 r$SHA_ROUNDS 8x8"; do
        a=$(case_median "$c" jobs_per_s)
        b=$(case_median "$c detach" jobs_per_s)
        [ -n "$a" ] && [ -n "$b" ] || continue
        ca=$(case_median "$c" us_per_job)
        cb=$(case_median "$c detach" us_per_job)
        da=$(case_median "$c" daemon_us_per_job)
        db=$(case_median "$c detach" daemon_us_per_job)
        pa=$(case_median "$c" p50_us)
        pb=$(case_median "$c detach" p50_us)
        row "$c, detach" "$a -> $b jobs/s, p50 $pa -> $pb us, us/job front $ca -> $cb ($(pct "$ca" "$cb")), daemon $da -> $db ($(pct "$da" "$db"))"
        row "" "  per round, median: front $(pair_pct "$c" us_per_job), daemon $(pair_pct "$c" daemon_us_per_job)"
    done
}

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.0f%%", 100 * (b / a - 1) }'; }

# pair_pct CASE FIELD: the median over rounds of each round's detached/plain
# ratio, as a change.  The two runs of a round are seconds apart, so a slow
# spell of the machine moves both; the medians of each side alone keep
# rounds that the spell split.
pair_pct() {
    local m
    m=$(paste <(grep -F "\"case\":\"$1\"" "$results" | grep -F "\"$2\":" | field "$2") \
              <(grep -F "\"case\":\"$1 detach\"" "$results" | grep -F "\"$2\":" | field "$2") |
        awk '$1 > 0 && $2 > 0 { print $2 / $1 }' | median_g)
    if [ -n "$m" ]; then pct 1 "$m"; else echo "?"; fi
}

# ---- the table ----------------------------------------------------------------------

field() {   # field NAME < json line
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

line_of() {
    grep -F "\"case\":\"$1\"" "$results" | tail -1
}

mean_of() {   # mean_of CASE FIELD: over every run of the case
    grep -F "\"case\":\"$1\"" "$results" | field "$2" |
        awk '{ s += $1; n++ } END { if (n) printf "%.0f", s / n }'
}

row() {
    printf '%-34s %s\n' "$1" "$2"
}

latency_row() {   # latency_row LABEL CASE
    local l
    l=$(line_of "$2")
    [ -n "$l" ] || { row "$1" "(no result)"; return; }
    row "$1" "$(printf '%s' "$l" | field jobs_per_s) jobs/s  p50 $(printf '%s' "$l" | field p50_us) us  p99 $(printf '%s' "$l" | field p99_us) us  p99.9 $(printf '%s' "$l" | field p999_us) us  max $(printf '%s' "$l" | field max_us) us"
}

table() {
    local l a b
    echo
    row "CASE" "FIGURES"
    grep '"bench":"ring"' "$results" | while read -r l; do
        row "ring $(printf '%s' "$l" | field impl) $(printf '%s' "$l" | field producers)->$(printf '%s' "$l" | field consumers)" \
            "$(printf '%s' "$l" | field msgs_per_s) msgs/s ($(printf '%s' "$l" | field msg_bytes) B)"
    done
    grep '"bench":"wake"' "$results" | while read -r l; do
        row "wake-up $(printf '%s' "$l" | field impl)" \
            "p50 $(printf '%s' "$l" | field p50_ns) ns  p99 $(printf '%s' "$l" | field p99_ns) ns"
    done
    latency_row "echo /run/echo 64B, 50 x 16" "echo 64B 50x16"
    latency_row "echo /run/echo 64B, 1 x 1" "echo 64B 1x1"
    latency_row "tcp echo yardstick 64B, 50 x 16" "tcp echo 64B 50x16"
    a=$(line_of "echo 64B 50x16" | field jobs_per_s)
    b=$(line_of "tcp echo 64B 50x16" | field jobs_per_s)
    if [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt 0 ]; then
        row "  pipeline vs loopback limit" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.0f%%", 100 * a / b }')"
    fi
    latency_row "sha256 r=1 /jobs, 50 x 16" "sha256 r1 json 50x16"
    for w in 1 2; do
        row "sha256 r=$SHA_ROUNDS, $w cpu worker(s)" "$(grep -cF "\"case\":\"sha256 r$SHA_ROUNDS ${w}w\"" "$results") runs, mean $(mean_of "sha256 r$SHA_ROUNDS ${w}w" jobs_per_s) jobs/s  p99 $(mean_of "sha256 r$SHA_ROUNDS ${w}w" p99_us) us"
    done
    a=$(mean_of "sha256 r$SHA_ROUNDS 1w" jobs_per_s)
    b=$(mean_of "sha256 r$SHA_ROUNDS 2w" jobs_per_s)
    if [ -n "$a" ] && [ -n "$b" ] && [ "$a" -gt 0 ]; then
        row "  scaling 1 -> 2 workers" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "x%.2f", b / a }')"
    fi
    a=$(grep '"bench":"sha256_vs_openssl"' "$results" | tail -1)
    if [ -n "$a" ]; then
        row "sha256 of 64 B: chain / openssl" "$(printf '%s' "$a" | field chain_ns_per_round) ns per round / EVP $(printf '%s' "$a" | field openssl_evp_ns_per_64B_message) ns per message, bulk $(printf '%s' "$a" | field openssl_bulk_ns_per_64B_block) ns per block"
    fi
    for l in "10 sleeps 1s|10 x sleep 1 s (16 io threads)" "100 sleeps 1s|100 x sleep 1 s (100 io threads)"; do
        a=$(line_of "${l%%|*}" | field seconds)
        row "${l#*|}" "${a:-?} s until all done"
    done
    for l in "ping idle|ping rtt, idle" "ping cpu saturated|ping rtt, every cpu worker busy"; do
        a=$(line_of "${l%%|*}")
        row "${l#*|}" "p50 $(printf '%s' "$a" | field p50_us) us  p99 $(printf '%s' "$a" | field p99_us) us  max $(printf '%s' "$a" | field max_us) us"
    done
    for l in "ping flood" "tls handshake storm" "full ring, 100 waiting"; do
        a=$(line_of "ping, $l")
        b=$(line_of "rss, $l")
        [ -n "$a" ] || continue
        row "hostile: $l" "quiet ping p50 $(printf '%s' "$a" | field p50_us) us  p99 $(printf '%s' "$a" | field p99_us) us  max $(printf '%s' "$a" | field max_us) us; front RSS +$(printf '%s' "$b" | field front_rss_growth_kib) KiB"
    done
    sweep_table
    dashboard_table
    detach_table
    a=$(line_of "$IDLE_CONNS idle websockets")
    row "$IDLE_CONNS idle websockets" "front $(printf '%s' "$a" | field rss_per_conn_bytes) B/conn RSS; kernel ~$(printf '%s' "$a" | field kernel_slab_per_socket_bytes) B/socket slab + $(printf '%s' "$a" | field kernel_tcp_buf_per_socket_bytes) B/socket buffers"
}

started=$(date +%s)
if [ "${BENCH_ONLY:-}" = hostile ]; then
    hostile_cases
elif [ "${BENCH_ONLY:-}" = sweep ]; then
    sweep_cases
elif [ "${BENCH_ONLY:-}" = dashboard ]; then
    dashboard_cases
elif [ "${BENCH_ONLY:-}" = detach ]; then
    detach_cases
else
    ring_case
    start_daemon
    echo_cases
    sha_cases
    sha256_vs_openssl_case
    ping_cases
    sleep_cases          # stops the first daemon, runs one with 100 io threads
    yardstick_case
    scaling_cases
    idle_case
    sweep_cases
    dashboard_cases
    detach_cases
    hostile_cases
fi
table
say "done in $(( $(date +%s) - started )) s"
exit $failed
