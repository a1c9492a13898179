#!/usr/bin/env bash
# The open-loop goal of docs/benchmarks.md (p99 at most 1 ms at half the maximum rate), measured
# as the figures there were: the switch and two issuer-sim hosts as separate processes on
# generated cards (`sync = always`), the maximum measured closed loop (16 connections x 16 in
# flight, 10 s), then `loadgen run -c 16 -p 16 --rate R` at each share of it, latency from the
# scheduled send time.
#
#   scripts/open-loop.sh [MIX=all|remote|onus] [SHARES="5 25 50"] [RUN_S=20] [CARDS=100000]
#
# "never sent" counts sends scheduled inside the run that had not gone out by its end (all P
# slots of their connection waiting): the target fell behind the rate. Prints a markdown table on stdout (progress and loadgen's own reports go to stderr). Each run's
# JSON report, and the switch's metrics after it, are in the folder it names. SYNC_NONE=1 runs
# the switch with `sync = none`; SCHEDULING=normal runs every process with the kernel's default
# thread scheduling instead of batch. Uses the default ports of `loadgen gen-cards` (switch 8583,
# hosts 8601 and 8602, metrics 9583): they must be free. Exit status: 0 only when every answer
# of every run matched the model and nothing failed (sends that never went out are in the table,
# not in the status).
set -euo pipefail
WHICH=${1:-all}
SHARES=${2:-5 25 50}
RUN_S=${3:-20}
CARDS=${4:-100000}
KIND=open-loop
# shellcheck source=scripts/stack.sh
. "$(dirname "$0")/stack.sh"
echo "maximum $MAX TPS closed loop" >&2
status=0
rows=""
for share in $SHARES; do
  RATE=$((MAX * share / 100))
  [ "$RATE" -ge 1 ] || RATE=1
  rc=0
  "${LOADGEN[@]}" run --mix "$MIXFILE" -c 16 -p 16 --rate "$RATE" --warmup-s 3 --duration-s "$RUN_S" \
    --quiet --json "$OUT/open-$share.json" >&2 || rc=$?
  [ "$rc" -eq 0 ] || status=1
  curl -s http://127.0.0.1:9583/metrics >"$OUT/metrics-$share.txt" || true
  if [ -s "$OUT/open-$share.json" ] && row=$(python3 - "$OUT/open-$share.json" "$share" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
l = j["latency"]
ms = lambda k: f"{l[k] / 1000:.2f}"
errors = sum(j["errors"].values())
print(f"| {sys.argv[2]}% | {j['rate']:,} | {j['tps']:,.0f} | {ms('p50_us')} | {ms('p90_us')} | "
      f"{ms('p99_us')} | {ms('p999_us')} | {ms('max_us')} | {(j.get('cpu_us_per_answer') or 0):.1f} | "
      f"{j.get('backlog') or 0} | {errors} | {j['mismatches']} |")
PY
  ); then
    rows+="$row"$'\n'
  else
    status=1
    rows+="| $share% | $RATE | the run wrote no report | | | | | | | | | |"$'\n'
  fi
  # Ctrl-C: loadgen reported what it measured; the shares after it are not run.
  if [ "$rc" -eq 130 ]; then
    rows+="| (interrupted) | | | | | | | | | | | |"$'\n'
    break
  fi
done
echo "Open loop, $WHICH traffic, closed-loop maximum $MAX TPS ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores):"
echo
echo "| share | rate/s | TPS | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | loadgen CPU µs/answer | never sent | errors | mismatches |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
# The goal's verdict, from the 50% row when there is one.
if [ -s "$OUT/open-50.json" ]; then
  python3 - "$OUT/open-50.json" <<'PY' || true
import json, sys
j = json.load(open(sys.argv[1]))
l = j["latency"]
why = [w for w, bad in [
    ("it was interrupted", j.get("interrupted")),
    ("nothing was answered in the window", not l.get("count")),
    ("some requests failed", sum(j["errors"].values())),
    ("some answers did not match the model", j["mismatches"]),
    ("some scheduled sends never went out", j.get("backlog")),
] if bad]
if why:
    print("\nGoal, p99 at most 1 ms at 50% of the maximum: no verdict, because " + "; ".join(why) + ".")
else:
    p99 = l["p99_us"] / 1000
    verdict = "met" if p99 <= 1.0 else "not met"
    print(f"\nGoal, p99 at most 1 ms at 50% of the maximum: {verdict} (p99 {p99:.2f} ms). The load "
          "generator shares this machine's cores with the switch and the hosts: see docs/performance.md.")
PY
fi
echo "Reports and logs: $OUT ($(du -sh "$OUT" | cut -f1), mostly journals; delete it when done)" >&2
exit "$status"
