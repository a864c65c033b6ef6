# shellcheck shell=bash
# Shared by the local node's scripts (cluster.sh, control-plane.sh, agentgateway-controller.sh),
# sourced, not run. Every daemon they start has a NAME: its output goes to $state/logs/NAME.log
# and its PID to $state/pids/NAME, where $state is the caller's state directory. Daemons are
# stopped by that PID, never by name.

# log MESSAGE...: one line on stderr, prefixed with the script's name.
log() { echo "$(basename "$0" .sh): $*" >&2; }

# start NAME CMD...: run CMD in the background with its own log and PID file. CMD must be a
# program (nsenter, a binary), not a shell function: a backgrounded function runs in a
# subshell, and $! would then be the subshell's PID, not the process `stop` must end.
start() {
    local name="$1"
    shift
    mkdir -p "$state/logs" "$state/pids"
    "$@" >"$state/logs/$name.log" 2>&1 &
    echo $! >"$state/pids/$name"
}

# wait_for NAME SECONDS CMD...: poll CMD every 0.25 s until it succeeds. Fails after SECONDS,
# or at once when NAME's process has exited, with the last lines of NAME's log.
wait_for() {
    local name="$1" secs="$2" began=$SECONDS pid=""
    shift 2
    [[ -f "$state/pids/$name" ]] && pid="$(cat "$state/pids/$name")"
    while ((SECONDS - began < secs)); do
        "$@" >/dev/null 2>&1 && return 0
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready (waited for: $*); last lines of its log:"
            tail -n 30 "$state/logs/$name.log" >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.25
    done
    log "$name not ready after ${secs}s (waited for: $*); last lines of its log:"
    tail -n 30 "$state/logs/$name.log" >&2 2>/dev/null || true
    return 1
}

# kill_pid PID: TERM, up to 10 s for it to exit, then KILL.
kill_pid() {
    local pid="$1"
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
}

# stop NAME...: end each started daemon by its PID file (kill_pid), then remove the file.
stop() {
    local name
    for name in "$@"; do
        [[ -f "$state/pids/$name" ]] || continue
        kill_pid "$(cat "$state/pids/$name")"
        rm -f "$state/pids/$name"
    done
}
