#!/usr/bin/env bash
# Runs a long job in the CPU time another leaves idle:
#
#   scripts/alongside.sh LOG BACKGROUND... -- FOREGROUND...
#
# BACKGROUND runs at the lowest priority the kernel has (SCHED_IDLE: it gets
# a core only when nothing else wants it, and gives it back at once), with
# its output in LOG. FOREGROUND runs as usual, its output on the terminal.
# Once FOREGROUND ends well, the script shows LOG, follows BACKGROUND to its
# end and exits with its status. If FOREGROUND fails, or the script is
# interrupted, BACKGROUND is stopped.
#
# make test builds the release this way while the Rust tests compile and
# run: the tests wait on sockets, timers and fsync for about a third of
# their run, and the compiles of the tests have stretches on one core.
set -euo pipefail

log=$1
shift
background=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    background+=("$1")
    shift
done
[ $# -gt 1 ] && [ ${#background[@]} -gt 0 ] || {
    echo "usage: $0 LOG BACKGROUND... -- FOREGROUND..." >&2
    exit 2
}
shift

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

idle=()
if chrt --idle 0 true 2>/dev/null; then idle=(chrt --idle 0); else idle=(nice -n 19); fi

mkdir -p "$(dirname "$log")"
step "started alongside, in the idle CPU time: ${background[*]} (output in $log)"
# Its own process group (job control, for this one command), so that
# stopping it stops every compiler it started. Not its own session: Linux
# shares the CPU fairly between sessions (autogroups) before it looks at
# priorities, and a job in a session of its own would get half the machine.
set -m
"${idle[@]}" "${background[@]}" >"$log" 2>&1 </dev/null &
bg=$!
set +m
stop() { kill -- -"$bg" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

"$@"

step "waiting for the job started alongside: ${background[*]}"
# Everything it printed so far, then the rest as it comes.
tail -n +1 --pid="$bg" -f "$log"
trap - EXIT
wait "$bg"
