#!/usr/bin/env bash
# Two builds of the switch, measured against each other in one sitting: the method behind the
# "before/after" figures of docs/performance.md. On this machine the throughput of two identical
# closed-loop runs can differ by a third, so a change is judged by alternating runs of the two
# builds, the same load each time, and mostly by the CPU the target spent per answer.
#
#   scripts/ab.sh A B [MIX=all|remote|onus] [RATES="0 15000"] [PAIRS=3] [RUN_S=12] [CARDS=100000]
#
# A and B are each a git revision (built once into target/ab/<commit>/), `.` for the working
# tree as it is (uncommitted changes included), or a folder holding `switch`, `issuer-sim` and
# `loadgen` binaries. RATES lists requests per second, 0 meaning closed loop. For each rate and
# pair, A and B run in turn (B first in every second pair): fresh journals, the switch and the two issuer-sim hosts as separate
# processes on generated cards (`sync = always`), then `loadgen run -c 16 -p 16` with 3 s of
# warm-up and RUN_S measured. The load generator is always A's, so the client stays the same.
#
# Prints a markdown table on stdout: TPS, latency from loadgen, the switch's own median
# (`switchyard_switch_latency_seconds`), and the CPU time of the switch and of the two hosts over
# the whole run divided by the answers of the whole run. Then, per rate, B's CPU per answer as a
# share of A's, pair by pair. Reports, metrics and logs stay in the folder it names. The switch
# config comes from A's gen-cards; an older B runs on a copy without the keys it does not know.
# A_ENV and B_ENV add environment variables to that build's switch (e.g.
# B_ENV="TOKIO_WORKER_THREADS=1" with the same build on both sides compares a setting). Uses the
# default ports of `loadgen gen-cards` (switch 8583, hosts 8601 and 8602, metrics 9583): they
# must be free. A_TLS=1 or B_TLS=1 runs that side with TLS on both hops (`gen-cards --tls`:
# `switch-tls.toml` and a test PKI): loadgen connects with acquirer 100001's client certificate,
# and the switch's links to the issuer hosts present its link certificate. `B_TLS=1
# scripts/ab.sh HEAD HEAD` measures what TLS costs. LOADGEN_ARGS adds words to every `loadgen run`
# (e.g. LOADGEN_ARGS="--requests-per-connection 1": a new connection per request). Exit status 0
# only when every run's answers all matched the model and nothing failed.
set -euo pipefail
# Command substitutions ($(build ...) below) stop at their first failure too.
shopt -s inherit_errexit
if [ $# -lt 2 ]; then
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
A=$1
B=$2
WHICH=${3:-all}
RATES=${4:-0 15000}
PAIRS=${5:-3}
RUN_S=${6:-12}
CARDS=${7:-100000}
A_TLS=${A_TLS:-}
B_TLS=${B_TLS:-}
# Split into words, never globbed.
read -ra EXTRA_RUN_ARGS <<<"${LOADGEN_ARGS:-}"
case "$WHICH" in
  all | onus | remote) ;;
  *) echo "which traffic: remote, all or onus (not '$WHICH')" >&2; exit 2 ;;
esac
# shellcheck source=scripts/builds.sh
. "$(dirname "$0")/builds.sh"
absolute_folders A B
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/mix.sh
. scripts/mix.sh

DIR_A=$(build "$A")
DIR_B=$(build "$B")
OUT=$(mktemp -d /tmp/switchyard-ab-XXXXXX)
echo "A = $A ($DIR_A), B = $B ($DIR_B); folder: $OUT" >&2
LOADGEN="$DIR_A/loadgen"
TLS_GEN=()
if [ -n "$A_TLS$B_TLS" ]; then
  # The load generator is A's: it must write the TLS stack's files and speak TLS.
  if ! "$LOADGEN" gen-cards --help | grep -q -- '--tls'; then
    echo "A's loadgen ($DIR_A) has no gen-cards --tls (added in 74ff161): with A_TLS or B_TLS, A must be that build or a later one" >&2
    exit 2
  fi
  TLS_GEN=(--tls)
fi
"$LOADGEN" gen-cards --count "$CARDS" --out "$OUT" "${TLS_GEN[@]}" >&2
# What loadgen adds to connect to a side whose listener is on TLS.
TLS_ARGS=(--tls-ca "$OUT/tls/ca.crt" --tls-cert "$OUT/tls/acquirer-100001.crt"
  --tls-key "$OUT/tls/acquirer-100001.key")
# And what the issuer hosts add to accept the switch's links over TLS (switch-tls.toml's
# `[issuer.tls]` presents the switch's link certificate).
HOST_TLS_ARGS=(--tls-cert "$OUT/tls/issuer-host.crt" --tls-key "$OUT/tls/issuer-host.key"
  --tls-client-ca "$OUT/tls/ca.crt")
MIXFILE=$(mix_file "$OUT" "$WHICH")
# Each build's own copy of the switch config. A's gen-cards writes every key A's switch knows; an
# older B rejects the keys it does not (`deny_unknown_fields`), so those lines are dropped from
# its copy, one at a time as its `check-config` names them (they are all settings that default
# to what the older build did anyway).
side_config() {
  local dir=$1 name=$2 tls=$3 out key i
  if [ -n "$tls" ]; then
    cp "$OUT/switch-tls.toml" "$OUT/switch-$name.toml"
  else
    cp "$OUT/switch.toml" "$OUT/switch-$name.toml"
  fi
  for i in $(seq 1 20); do
    out=$("$dir/switch" --config "$OUT/switch-$name.toml" check-config 2>&1) && return 0
    key=$(printf '%s\n' "$out" | sed -n 's/.*unknown field `\([a-z_0-9]*\)`.*/\1/p' | head -n 1)
    if [ -z "$key" ]; then
      printf '%s\n' "$out" >&2
      return 1
    fi
    echo "$name: its switch does not know the config key $key; left out of its copy" >&2
    sed -i "/^$key = /d" "$OUT/switch-$name.toml"
  done
  return 1
}
side_config "$DIR_A" A "$A_TLS" || { echo "A's switch rejects the generated config" >&2; exit 2; }
side_config "$DIR_B" B "$B_TLS" || { echo "B's switch rejects the generated config" >&2; exit 2; }
HZ=$(getconf CLK_TCK)
PIDS=()
trap stop_stack EXIT
# User plus system CPU of a process so far, in clock ticks; nothing when it is gone.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true; }
# The same for the two issuer hosts (the first two of PIDS) together; nothing when one is gone.
hosts_ticks() {
  local sum=0 p t
  for p in "${PIDS[@]:0:2}"; do
    t=$(ticks "$p")
    [ -n "$t" ] || return 0
    sum=$((sum + t))
  done
  echo "$sum"
}

status=0
rows=""
# A run that measured nothing: its row says why, and the script's status fails.
failed_row() {
  status=1
  CPU=""
  rows+="| $1 | $2 | $3 | $4 | | | | | | | |"$'\n'
}
# One run of one build at one rate; appends its table row and leaves its CPU per answer in CPU.
run_one() {
  local name=$1 dir=$2 rate=$3 pair=$4 extra=$5 tls=$6
  local tls_args=() host_tls_args=()
  [ -z "$tls" ] || tls_args=("${TLS_ARGS[@]}")
  [ -z "$tls" ] || host_tls_args=("${HOST_TLS_ARGS[@]}")
  local envs=()
  # A_ENV and B_ENV are lists of NAME=value words (split, never globbed).
  [ -z "$extra" ] || read -ra envs <<<"$extra"
  local label="$name-$rate-$pair"
  # The last run's processes are gone before its journals are.
  stop_stack
  rm -rf "$OUT/data"
  for bank in north-bank east-bank; do
    RUST_LOG=info setsid "$dir/issuer-sim" --config "$OUT/$bank.toml" "${host_tls_args[@]}" \
      >"$OUT/$label-$bank.log" 2>&1 &
    PIDS+=($!)
  done
  env RUST_LOG=info "${envs[@]}" setsid "$dir/switch" --config "$OUT/switch-$name.toml" >"$OUT/$label-switch.log" 2>&1 &
  local switch=$!
  PIDS+=("$switch")
  # The CPU read below must be the switch's own: setsid, started from a script without job
  # control, runs it in the process it was given instead of forking.
  if ! wait_for_switch "$OUT/$label-switch.log" || [ "$(cat "/proc/$switch/comm" 2>/dev/null)" != switch ]; then
    echo "$label: the stack did not come up; see $OUT/$label-*.log" >&2
    stop_stack
    failed_row "$name" "$rate" "$pair" "the stack did not start"
    return
  fi
  local s0 h0 s1 h1
  s0=$(ticks "$switch")
  h0=$(hosts_ticks)
  local rate_args=()
  [ "$rate" != 0 ] && rate_args=(--rate "$rate")
  local rc=0
  "$LOADGEN" run --mix "$MIXFILE" -c 16 -p 16 "${rate_args[@]}" --warmup-s 3 --duration-s "$RUN_S" \
    "${tls_args[@]}" "${EXTRA_RUN_ARGS[@]}" --quiet --json "$OUT/$label.json" >&2 || rc=$?
  s1=$(ticks "$switch")
  h1=$(hosts_ticks)
  curl -s http://127.0.0.1:9583/metrics >"$OUT/$label.metrics" || true
  stop_stack
  if [ -z "$s0" ] || [ -z "$s1" ] || [ -z "$h0" ] || [ -z "$h1" ]; then
    echo "$label: a process of the stack died during the run; see $OUT/$label-*.log" >&2
    failed_row "$name" "$rate" "$pair" "a process of the stack died"
    return
  fi
  [ "$rc" -eq 130 ] && { echo "interrupted; reports and logs: $OUT" >&2; exit 130; }
  [ "$rc" -eq 0 ] || status=1
  local row
  if row=$(python3 - "$OUT/$label.json" "$OUT/$label.metrics" "$name" "$rate" "$pair" \
    $((s1 - s0)) $((h1 - h0)) "$HZ" 2>"$OUT/$label.cpu" <<'PY'
import json, re, sys
report, metrics, name, rate, pair, sw, hosts, hz = sys.argv[1:]
j = json.load(open(report))
l = j["latency"]
answered = max(j["answered"], 1)
per = lambda t: int(t) / int(hz) * 1e6 / answered
# The switch's own median from its latency histogram's buckets, interpolated within the bucket
# that holds it as Prometheus's histogram_quantile does (summaries, which builds before 41b6374
# export, give it directly; so with one side older than that, the two medians are estimated
# differently, and the buckets are coarse: 100, 250, 500 µs around a typical median).
own = ""
buckets = []
for line in open(metrics):
    m = re.match(r'switchyard_switch_latency_seconds\{quantile="0.5"\} (\S+)', line)
    if m:
        own = f"{float(m.group(1)) * 1e6:.0f}"
        break
    m = re.match(r'switchyard_switch_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float(m.group(1)), float(m.group(2))))
if not own and buckets and buckets[-1][1] > 0:
    half = buckets[-1][1] / 2
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= half:
            # In the +Inf bucket: its lower bound, the highest finite one (as Prometheus does).
            at = lower if bound == float("inf") else lower + (bound - lower) * (half - below) / max(count - below, 1)
            own = f"{at * 1e6:.0f}"
            break
        lower, below = bound, count
errors = sum(j["errors"].values())
print(f"| {name} | {'closed' if rate == '0' else rate} | {pair} | {j['tps']:,.0f} | {l['p50_us'] / 1000:.2f} | "
      f"{l['p99_us'] / 1000:.2f} | {own} | {per(sw):.1f} | {per(hosts):.1f} | {errors} | {j['mismatches']} |")
print(f"{per(sw):.3f}", file=sys.stderr)
PY
  ); then
    rows+="$row"$'\n'
    CPU=$(tail -n 1 "$OUT/$label.cpu")
  else
    failed_row "$name" "$rate" "$pair" "the run wrote no report"
  fi
}

shares=""
for rate in $RATES; do
  ratios=""
  for pair in $(seq 1 "$PAIRS"); do
    # A then B, then B then A: a drift over the sitting does not always fall on the same side.
    if [ $((pair % 2)) = 1 ]; then
      run_one A "$DIR_A" "$rate" "$pair" "${A_ENV:-}" "$A_TLS"
      cpu_a=$CPU
      run_one B "$DIR_B" "$rate" "$pair" "${B_ENV:-}" "$B_TLS"
      cpu_b=$CPU
    else
      run_one B "$DIR_B" "$rate" "$pair" "${B_ENV:-}" "$B_TLS"
      cpu_b=$CPU
      run_one A "$DIR_A" "$rate" "$pair" "${A_ENV:-}" "$A_TLS"
      cpu_a=$CPU
    fi
    if [ -n "$cpu_a" ] && [ -n "$cpu_b" ]; then
      ratios+=" $(python3 -c "import sys; print(f'{float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$cpu_a" "$cpu_b")"
    fi
  done
  label=$([ "$rate" = 0 ] && echo "closed loop" || echo "$rate/s")
  shares+="- $label: B's switch CPU per answer as a share of A's, pair by pair:${ratios:- none}"$'\n'
done

echo "A = \`$A\`${A_ENV:+ with $A_ENV}${A_TLS:+ over TLS}, B = \`$B\`${B_ENV:+ with $B_ENV}${B_TLS:+ over TLS}: $WHICH traffic, \`loadgen run -c 16 -p 16${LOADGEN_ARGS:+ $LOADGEN_ARGS}\`, 3 s warm-up and $RUN_S s measured, $CARDS cards, \`sync = always\` ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores). CPU is per answer over the whole run, warm-up included."
echo
echo "| build | rate/s | pair | TPS | p50 ms | p99 ms | switch's own p50 µs | switch CPU µs/answer | hosts CPU µs/answer | errors | mismatches |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s' "$rows"
echo
printf '%s' "$shares"
echo "Reports and logs: $OUT ($(du -sh "$OUT" | cut -f1); delete it when done)" >&2
exit "$status"
