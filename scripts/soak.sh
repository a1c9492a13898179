#!/usr/bin/env bash
# The soak of docs/reliability.md: the switch and two issuer-sim hosts as separate processes on
# generated cards, the maximum rate measured closed loop, then an open-loop run at half of it for
# DURATION_S seconds while loadgen samples the switch's RSS every second.
#
#   scripts/soak.sh [DURATION_S=600] [MIX=remote|all|onus] [CARDS=100000]
#
# SOAK_RATE=N soaks at N requests a second instead of half the measured maximum (to compare two
# builds at one rate; STACK_BIN, scripts/stack.sh, names the other build's binaries).
# ISSUER_SIM_ARGS adds arguments to both issuer-sim commands (e.g. "--checkpoint-every 1000000").
# SCHEDULING=normal runs every process with the kernel's default thread scheduling instead of
# batch (scripts/stack.sh).
#
# Uses the default ports of `loadgen gen-cards` (switch 8583, hosts 8601 and 8602, metrics
# 9583): they must be free. Writes everything under a fresh folder in /tmp and prints its name;
# the report is `soak.json` there (`watched_rss_kib` is the switch's RSS series). Exit status is
# loadgen's: 0 only when every answer matched the model and nothing failed.
set -euo pipefail
DURATION_S=${1:-600}
WHICH=${2:-remote}
CARDS=${3:-100000}
KIND=soak
# shellcheck source=scripts/stack.sh
. "$(dirname "$0")/stack.sh"
RATE=${SOAK_RATE:-$((MAX / 2))}
echo "maximum $MAX TPS closed loop; soaking at $RATE TPS for $DURATION_S s" >&2
status=0
# Ctrl-C stops the soak early; loadgen still reports and writes soak.json and soak.svg (exit 130).
"${LOADGEN[@]}" run --mix "$MIXFILE" -c 16 -p 8 --rate "$RATE" --warmup-s 5 --duration-s "$DURATION_S" \
  --watch-pid "$SWITCH" --json "$OUT/soak.json" --plot "$OUT/soak.svg" || status=$?
echo "Reports and logs: $OUT ($(du -sh "$OUT" | cut -f1), mostly journals; delete it when done)" >&2
exit "$status"
