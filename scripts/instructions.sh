#!/usr/bin/env bash
# Instructions the switch executes per answer, counted by valgrind's callgrind: a measure that
# repeats to within about one percent from run to run on this shared machine, where CPU time
# per answer moves by 10-25% between identical runs (scripts/ab.sh). It sees what a change does
# to the work the switch's code does, not what it does to cache misses or the kernel's share, so
# it complements ab.sh rather than replacing it.
#
#   scripts/instructions.sh A [B] [MIX=onus|remote|all] [RATE=200] [SECONDS=10] [RUNS=2]
#   COUNT=hosts scripts/instructions.sh ...   counts the two issuer hosts instead of the switch
#   LOAD="-c 16 -p 16" scripts/instructions.sh ...   another load shape (RATE is then ignored)
#
# A and B are git revisions, `.` for the working tree, or folders holding `switch`, `issuer-sim`
# and `loadgen` (scripts/builds.sh). For each run: fresh journals, the two
# issuer-sim hosts as they are, the switch under `valgrind --tool=callgrind` with instrumentation
# off until it is listening, then `loadgen run -c 4 -p 1 --rate RATE` for SECONDS with counting
# on. Four connections with one request each at a low rate keep every request its own journal
# commit, so the count does not move with how requests happen to batch (at 16x4 it moved by
# about 4%); LOAD replaces `-c 4 -p 1 --rate RATE` for the shape the grid measures, closed
# loop at 16x16 say, where the count is per answer of batched commits. Prints a markdown table:
# responses the switch sent while counting (its `switchyard_responses_total`), instructions,
# and instructions per response. The callgrind
# files stay in the folder it names, for `callgrind_annotate`. With COUNT=hosts the two issuer-sim
# hosts run under callgrind instead (the switch natively), and their instructions are summed and
# divided by the same responses: what the remote hosts execute per answer (on-us answers and
# unknown BINs never reach them, so use it with MIX=remote). Uses the default ports of
# `loadgen gen-cards` (switch 8583, hosts 8601 and 8602, metrics 9583): they must be free. Both
# builds run on A's generated config, so B must accept A's config keys (scripts/ab.sh drops
# what an older B does not know; this script does not). Needs valgrind (the CI installs nothing for it: this is a bench tool, not a test).
set -euo pipefail
shopt -s inherit_errexit
if [ $# -lt 1 ]; then
  sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
A=$1
B=${2:-}
WHICH=${3:-onus}
COUNT=${COUNT:-switch}
case "$COUNT" in
  switch | hosts) ;;
  *) echo "COUNT is switch or hosts (not '$COUNT')" >&2; exit 2 ;;
esac
RATE=${4:-200}
LOAD=${LOAD:-"-c 4 -p 1 --rate $RATE"}
SECS=${5:-10}
RUNS=${6:-2}
command -v valgrind >/dev/null || { echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2; exit 2; }
# shellcheck source=scripts/builds.sh
. "$(dirname "$0")/builds.sh"
absolute_folders A B
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/mix.sh
. scripts/mix.sh


DIR_A=$(build "$A")
DIR_B=""
[ -z "$B" ] || DIR_B=$(build "$B")
OUT=$(mktemp -d /tmp/switchyard-instructions-XXXXXX)
echo "A = $A ($DIR_A)${B:+, B = $B ($DIR_B)}; folder: $OUT" >&2
# One load generator for every run: A's.
LOADGEN="$DIR_A/loadgen"
"$LOADGEN" gen-cards --count 100000 --out "$OUT" >&2
MIXFILE=$(mix_file "$OUT" "$WHICH")
PIDS=()
trap stop_stack EXIT
responses() {
  (curl -s http://127.0.0.1:9583/metrics || true) |
    awk '/^switchyard_responses_total/ {s += $2} END {printf "%.0f\n", s}'
}

rows=""
status=0
run_one() {
  local name=$1 dir=$2 run=$3 label="$1-$3" switch before after total
  stop_stack
  rm -rf "$OUT/data"
  # Under callgrind, with counting off until the load starts: the switch, or the two hosts.
  local counted=() bank pid
  for bank in north-bank east-bank; do
    if [ "$COUNT" = hosts ]; then
      RUST_LOG=info setsid valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind.$label-$bank" "$dir/issuer-sim" \
        --config "$OUT/$bank.toml" >"$OUT/$label-$bank.log" 2>&1 &
      pid=$!
      counted+=("$pid")
    else
      RUST_LOG=info setsid "$dir/issuer-sim" --config "$OUT/$bank.toml" >"$OUT/$label-$bank.log" 2>&1 &
      pid=$!
    fi
    PIDS+=("$pid")
    if [ "$COUNT" = hosts ]; then
      # A host is slow to load its cards under valgrind: the switch's links give up on one that
      # is not listening yet, so each host gets up to five minutes before the switch starts.
      local i
      for i in $(seq 1 600); do
        grep -q "issuer-sim listening" "$OUT/$label-$bank.log" && break
        sleep 0.5
      done
      grep -q "issuer-sim listening" "$OUT/$label-$bank.log" ||
        echo "$label: $bank is not listening after five minutes; see $OUT/$label-$bank.log" >&2
    fi
  done
  if [ "$COUNT" = hosts ]; then
    RUST_LOG=info setsid "$dir/switch" --config "$OUT/switch.toml" >"$OUT/$label-switch.log" 2>&1 &
    switch=$!
  else
    RUST_LOG=info setsid valgrind --tool=callgrind --instr-atstart=no \
      --callgrind-out-file="$OUT/callgrind.$label" "$dir/switch" --config "$OUT/switch.toml" \
      >"$OUT/$label-switch.log" 2>&1 &
    switch=$!
    counted+=("$switch")
  fi
  PIDS+=("$switch")
  # Slow to start under valgrind: up to five minutes for it to listen, then its two links must be
  # up (scripts/mix.sh's check) before anything is counted.
  local i
  for i in $(seq 1 600); do
    grep -q "switch listening" "$OUT/$label-switch.log" && break
    sleep 0.5
  done
  if ! wait_for_switch "$OUT/$label-switch.log"; then
    echo "$label: the switch did not start; see $OUT/$label-switch.log" >&2
    status=1
    rows+="| $name | $run | the switch did not start | | |"$'\n'
    return
  fi
  before=$(responses)
  for pid in "${counted[@]}"; do callgrind_control -i on "$pid" >/dev/null; done
  local rc=0
  # shellcheck disable=SC2086 # LOAD is a list of arguments
  "$LOADGEN" run --mix "$MIXFILE" $LOAD --warmup-s 0 --duration-s "$SECS" \
    --timeout-ms 30000 --quiet --json "$OUT/$label.json" >&2 || rc=$?
  [ "$rc" -ne 130 ] || { echo "interrupted; files in $OUT" >&2; exit 130; }
  for pid in "${counted[@]}"; do callgrind_control -i off "$pid" >/dev/null; done
  after=$(responses)
  for pid in "${counted[@]}"; do callgrind_control -d "$pid" >/dev/null; done
  stop_stack
  [ "$rc" -eq 0 ] || status=1
  # The dump holds what was counted; the file written at exit holds nothing more (counting was
  # off), so every file of the run is summed.
  total=$(cat "$OUT/callgrind.$label"* | awk '/^totals:/ {s += $2} END {printf "%.0f\n", s}')
  rows+=$(python3 -c '
import sys
name, run, before, after, total = sys.argv[1:]
n = float(after) - float(before)
per = f"{int(total) / n:,.0f}" if n > 0 else "none answered"
print(f"| {name} | {run} | {n:,.0f} | {int(total):,} | {per} |")
' "$name" "$run" "$before" "$after" "$total")$'\n'
}

for run in $(seq 1 "$RUNS"); do
  run_one A "$DIR_A" "$run"
  [ -z "$DIR_B" ] || run_one B "$DIR_B" "$run"
done

echo "A = \`$A\`${B:+, B = \`$B\`}: $WHICH traffic, \`loadgen run $LOAD\` for $SECS s, $( [ "$COUNT" = hosts ] && echo "the two issuer hosts" || echo "the switch") under callgrind ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores)."
echo
echo "| build | run | responses | instructions | per response |"
echo "|---|---:|---:|---:|---:|"
printf '%s' "$rows"
exit "$status"
