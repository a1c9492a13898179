# Sourced by scripts/stack.sh and scripts/ab.sh, what both need of a stack on generated cards:
# which of the mixes `loadgen gen-cards` wrote into a folder a run uses, and when the switch is
# ready.
#
#   mix_file OUT all|onus|remote   prints the mix file's path
#   wait_for_switch LOG            waits (up to 30 s) for the switch to be ready; status 1 if not
#
# remote is written here: both remote issuers' mixes without the on-us one. The switch keeps no
# per-card state then, so its memory must level off once the duplicate window is full.
mix_file() {
  local out=$1 which=$2
  case "$which" in
    all) echo "$out/mix.toml" ;;
    # The on-us issuer alone: the switch decides every request itself.
    onus) echo "$out/mix-metro-pay.toml" ;;
    remote)
      python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
text = open(f"{out}/mix.toml").read()
blocks = re.split(r"\n(?=\[\[)", text)
keep = [b for b in blocks if "metro-pay" not in b or b.startswith("#")]
keep[0] = keep[0].replace(", metro-pay", "")
open(f"{out}/mix-remote.toml", "w").write("\n".join(keep))
PY
      [ -s "$out/mix-remote.toml" ] || return 1
      echo "$out/mix-remote.toml"
      ;;
    *)
      echo "which traffic: remote, all or onus (not '$which')" >&2
      return 2
      ;;
  esac
}

# Ready means both remote links up (the metrics endpoint on its default port says so) and
# "switch listening" in the switch's log LOG: the links come up before the journal is recovered
# and the acquirer port bound.
wait_for_switch() {
  local log=$1 ready
  for _ in $(seq 1 300); do
    ready=$( (curl -s http://127.0.0.1:9583/metrics || true) | awk '/^switchyard_links_ready/ {s+=$2} END {print s+0}')
    [ "$ready" -ge 2 ] && grep -q 'switch listening' "$log" && return 0
    sleep 0.1
  done
  return 1
}
