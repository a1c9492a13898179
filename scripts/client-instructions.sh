#!/usr/bin/env bash
# Instructions the load client (`loadgen run`) executes per answer, counted by valgrind's
# callgrind: what the harness itself costs, which sits in every run's CPU beside the switch's or
# the relay's (docs/performance.md, "The load client's share").
#
#   scripts/client-instructions.sh BIN [echo|onus|remote] [RATE=1000]
#
# BIN is a folder holding `switch`, `issuer-sim` and `loadgen` (e.g. target/release). `echo`
# drives `loadgen relay` in front of `loadgen echo-backend` (ports 7000 and 7001) with the
# remote issuers' mix; `onus` and `remote` drive the switch and its two hosts on generated
# cards (the default ports of `loadgen gen-cards`). The target runs natively; the client runs
# under callgrind twice, for 3 s and for 13 s at RATE requests/s over 4 connections with one
# request each, and the difference of the two counts divided by the difference of their answers
# is the count per answer (start-up, the mix's cards loaded, cancels out). Two runs of one build
# agree to within about 10%: the client's work per answer moves with how its wake-ups fall.
# Needs valgrind.
set -euo pipefail
if [ $# -lt 1 ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
BIN=$(cd "$1" && pwd)
MODE=${2:-echo}
RATE=${3:-1000}
case "$MODE" in
  echo | onus | remote) ;;
  *) echo "which target: echo, onus or remote (not '$MODE')" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2; exit 2; }
for b in switch issuer-sim loadgen; do
  [ -x "$BIN/$b" ] || { echo "$BIN has no $b binary" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
# shellcheck source=scripts/mix.sh
. scripts/mix.sh
OUT=$(mktemp -d /tmp/switchyard-client-instructions-XXXXXX)
echo "folder: $OUT" >&2
"$BIN/loadgen" gen-cards --count 100000 --out "$OUT" >&2
PIDS=()
stop() {
  if [ ${#PIDS[@]} -gt 0 ]; then
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
}
trap stop EXIT
# Waits up to 10 s for LOG to say it is listening.
listening() {
  local log=$1 what=$2
  for _ in $(seq 1 100); do
    grep -q "$what" "$log" && return 0
    sleep 0.1
  done
  echo "not listening after 10 s; see $log" >&2
  exit 1
}
ARGS=()
case "$MODE" in
  echo)
    MIX=$(mix_file "$OUT" remote)
    "$BIN/loadgen" echo-backend --listen 127.0.0.1:7001 >"$OUT/echo.log" 2>&1 &
    PIDS+=($!)
    listening "$OUT/echo.log" "echo backend listening"
    "$BIN/loadgen" relay --listen 127.0.0.1:7000 --backend 127.0.0.1:7001 >"$OUT/relay.log" 2>&1 &
    PIDS+=($!)
    listening "$OUT/relay.log" "relay listening"
    ARGS=(--target 127.0.0.1:7000 --expect echo)
    ;;
  onus | remote)
    MIX=$(mix_file "$OUT" "$MODE")
    for bank in north-bank east-bank; do
      "$BIN/issuer-sim" --config "$OUT/$bank.toml" >"$OUT/$bank.log" 2>&1 &
      PIDS+=($!)
    done
    "$BIN/switch" --config "$OUT/switch.toml" >"$OUT/switch.log" 2>&1 &
    PIDS+=($!)
    wait_for_switch "$OUT/switch.log" || { echo "the switch did not start; see $OUT/switch.log" >&2; exit 1; }
    ;;
esac
for secs in 3 13; do
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$secs" "$BIN/loadgen" run \
    "${ARGS[@]}" --mix "$MIX" -c 4 -p 1 --rate "$RATE" --warmup-s 0 --duration-s "$secs" \
    --quiet --json "$OUT/run-$secs.json" >"$OUT/run-$secs.out" 2>&1 || {
    # loadgen fails on any error or mismatch: a count of a failing run means nothing.
    echo "loadgen run ($secs s) failed; see $OUT/run-$secs.out" >&2
    exit 1
  }
done
python3 - "$OUT" "$MODE" "$RATE" <<'PY'
import glob, json, sys
out, mode, rate = sys.argv[1:]
def total(secs):
    s = 0
    for f in glob.glob(f"{out}/callgrind.{secs}*"):
        for line in open(f):
            if line.startswith("totals:"):
                s += int(line.split()[1])
    return s
def answered(secs):
    return json.load(open(f"{out}/run-{secs}.json"))["answered"]
a, b = answered(3), answered(13)
if b <= a:
    sys.exit("the longer run answered no more than the shorter one")
print(f"loadgen against {mode} at {rate}/s (4x1): answers {a:,} -> {b:,}, instructions "
      f"{total(3):,} -> {total(13):,}: {(total(13) - total(3)) / (b - a):,.0f} per answer")
PY
