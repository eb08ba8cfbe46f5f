# Progress for long build steps; source it from a build script.
#
#   progress LABEL LOG CMD...
#
# runs CMD with its output appended to LOG and prints, every $PROGRESS_EVERY seconds (default 30),
# one line to stderr: LABEL, the time so far and how many lines CMD wrote (with `go build -v` the
# packages compiled, with buildah the build steps). On failure the last lines of LOG are shown.
# Returns CMD's exit status.
progress() {
  local label=$1 log=$2 every=${PROGRESS_EVERY:-30} start=$SECONDS pid rc next lines
  shift 2
  mkdir -p "$(dirname "$log")"
  "$@" >>"$log" 2>&1 &
  pid=$!
  next=$((SECONDS + every))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if [ $SECONDS -ge $next ] && kill -0 "$pid" 2>/dev/null; then
      lines=$(wc -l <"$log")
      printf '%s: %dm%02ds so far, %d lines of output (%s)\n' "$label" \
        $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$lines" "$log" >&2
      next=$((SECONDS + every))
    fi
  done
  rc=0
  wait "$pid" || rc=$?
  if [ $rc -ne 0 ]; then
    printf '%s: FAILED (exit %d) after %d s; last lines of %s:\n' "$label" $rc $((SECONDS - start)) "$log" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
  else
    printf '%s: done in %d s\n' "$label" $((SECONDS - start)) >&2
  fi
  return $rc
}

#   wait_with_progress PID LABEL
#
# waits for the background job PID, printing "LABEL: still running, Nm SSs" to stderr every
# $PROGRESS_EVERY seconds; returns the job's exit status.
wait_with_progress() {
  local pid=$1 label=$2 every=${PROGRESS_EVERY:-30} start=$SECONDS next rc=0
  next=$((SECONDS + every))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if [ $SECONDS -ge $next ] && kill -0 "$pid" 2>/dev/null; then
      printf '%s: still running, %dm%02ds\n' "$label" $(((SECONDS - start) / 60)) \
        $(((SECONDS - start) % 60)) >&2
      next=$((SECONDS + every))
    fi
  done
  wait "$pid" || rc=$?
  return $rc
}
