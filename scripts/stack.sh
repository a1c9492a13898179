# Sourced by scripts/soak.sh and scripts/open-loop.sh: the switch and two issuer-sim hosts as
# separate processes on generated cards, as in production, and the closed-loop maximum measured
# against them. Expects WHICH (remote|all|onus), CARDS and a name for the folder (KIND); leaves
# BIN, OUT, MIXFILE, SWITCH and MAX set, and the processes stopped when the caller exits.
#
# Uses the default ports of `loadgen gen-cards` (switch 8583, hosts 8601 and 8602, metrics
# 9583): they must be free. ISSUER_SIM_ARGS adds arguments to both issuer-sim commands (not
# --scheduling, which SCHEDULING gives).
# STACK_BIN=folder runs the switch, issuer-sim and loadgen binaries found there (e.g. one of
# scripts/ab.sh's target/ab/<commit>/) instead of building the working tree.
# SCHEDULING=normal runs every process (switch, hosts, load client) with the kernel's default
# thread scheduling instead of batch (switch::process says why batch is the default); it leaves
# LOADGEN set to the load client's command with that setting.
case "$WHICH" in
  all | onus | remote) ;;
  *) echo "which traffic: remote, all or onus (not '$WHICH')" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
if [ -n "${STACK_BIN:-}" ]; then
  BIN=$STACK_BIN
else
  cargo build --release --bin switch --bin issuer-sim --bin loadgen >&2
  BIN=target/release
fi
SCHEDULING=${SCHEDULING:-batch}
case "$SCHEDULING" in
  batch | normal) ;;
  *) echo "SCHEDULING: batch or normal (not '$SCHEDULING')" >&2; exit 2 ;;
esac
LOADGEN=("$BIN/loadgen" --scheduling "$SCHEDULING")
OUT=$(mktemp -d "/tmp/switchyard-$KIND-XXXXXX")
echo "$KIND folder: $OUT" >&2
"$BIN/loadgen" gen-cards --count "$CARDS" --out "$OUT" >&2
[ "${SYNC_NONE:-}" = 1 ] && sed -i "s/^sync = \"always\"/sync = \"none\"/" "$OUT/switch.toml"
sed -i "s/^scheduling = .*/scheduling = \"$SCHEDULING\"/" "$OUT/switch.toml"
grep -q "^scheduling = \"$SCHEDULING\"" "$OUT/switch.toml" || { echo "$OUT/switch.toml: no [switch] scheduling line to set" >&2; exit 2; }
# shellcheck source=scripts/mix.sh
. scripts/mix.sh
MIXFILE=$(mix_file "$OUT" "$WHICH")
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
# In sessions of their own (setsid): a Ctrl-C at the terminal stops loadgen's run, which still
# reports, and not the stack under it; the trap above stops the stack when the script ends.
for bank in north-bank east-bank; do
  # shellcheck disable=SC2086 # ISSUER_SIM_ARGS is a list of arguments
  RUST_LOG=info setsid "$BIN/issuer-sim" --config "$OUT/$bank.toml" --scheduling "$SCHEDULING" ${ISSUER_SIM_ARGS:-} >"$OUT/$bank.log" 2>&1 &
  PIDS+=($!)
done
RUST_LOG=info setsid "$BIN/switch" --config "$OUT/switch.toml" >"$OUT/switch.log" 2>&1 &
SWITCH=$!
PIDS+=("$SWITCH")
wait_for_switch "$OUT/switch.log" || { echo "the switch did not come up (links ready and \"switch listening\" logged); see $OUT/*.log" >&2; exit 2; }
# A saturated run may see a timeout; its throughput is still the maximum to share out. Ctrl-C
# (loadgen exits 130) ends the script.
rc=0
"${LOADGEN[@]}" run --mix "$MIXFILE" -c 16 -p 16 --warmup-s 2 --duration-s 10 --quiet --json "$OUT/max.json" >&2 || rc=$?
[ "$rc" -ne 130 ] || { echo "interrupted; reports and logs: $OUT" >&2; exit 130; }
[ "$rc" -eq 0 ] || echo "the closed-loop run was not clean (its report is above); going on with its throughput" >&2
[ -s "$OUT/max.json" ] || { echo "the closed-loop run wrote no report; see $OUT/*.log" >&2; exit 2; }
MAX=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['tps']))" "$OUT/max.json")
