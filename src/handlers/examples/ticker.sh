#!/bin/sh
# An executable job type (`,lines`): one line per tick, each a chunk.
#
#   wsjobd --exec ticks=src/handlers/examples/ticker.sh,lines
#   wsjob submit ticks 5
#
# Input: the number of ticks (default 3).  WSJOB_ID, WSJOB_TYPE and
# WSJOB_DEADLINE_MS are in the environment; a cancel sends SIGTERM to the
# process group, SIGKILL after the grace period.
read n || true
n=${n:-3}
case $n in *[!0-9]*|'') echo "input must be a count of ticks" >&2; exit 2 ;; esac
i=1
while [ "$i" -le "$n" ]; do
    echo "tick $i of $n ($WSJOB_TYPE)"
    i=$((i + 1))
    [ "$i" -le "$n" ] && sleep 0.1
done
exit 0
