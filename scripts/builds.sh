# Sourced by scripts/ab.sh and scripts/instructions.sh, what both need to run builds against
# each other on a stack of processes. Expects ROOT (the repository) and a PIDS array.
#
#   build A                prints the folder holding build A's switch, issuer-sim and loadgen
#   stop_stack             stops the processes in PIDS and empties it
#   absolute_folders A B   makes the variables A and B absolute where they name folders
#
# A is a git revision (built once into target/ab/<commit>/, through a temporary worktree and one
# shared target folder), `.` for the working tree (built, then copied to
# target/ab/worktree-<time>/), or a folder that already holds the three binaries.

build() {
  local what=$1 dir
  if [ "$what" != . ] && [ -d "$what" ]; then
    for b in switch issuer-sim loadgen; do
      [ -x "$what/$b" ] || { echo "$what has no $b binary" >&2; return 1; }
    done
    (cd "$what" && pwd)
    return
  fi
  if [ "$what" = . ]; then
    cargo build --release --bin switch --bin issuer-sim --bin loadgen >&2 || return 1
    dir="$ROOT/target/ab/worktree-$(date -u +%Y%m%dT%H%M%S)"
    mkdir -p "$dir" || return 1
    cp target/release/switch target/release/issuer-sim target/release/loadgen "$dir/" || return 1
    echo "$dir"
    return
  fi
  local sha
  sha=$(git rev-parse --verify --quiet "$what^{commit}") || {
    echo "'$what' is neither a folder nor a git revision" >&2
    return 1
  }
  dir="$ROOT/target/ab/${sha:0:12}"
  if [ ! -d "$dir" ]; then
    local tree built=0
    tree=$(mktemp -d /tmp/switchyard-ab-tree-XXXXXX) || return 1
    # One target folder for every revision: the second build is incremental. The binaries are
    # copied to a folder of their own and put in place only after a good build, so that a
    # failed one never leaves another revision's binaries under this one's name.
    if git worktree add --detach -q "$tree" "$sha" &&
      CARGO_TARGET_DIR="$ROOT/target/ab-build" cargo build --release \
        --manifest-path "$tree/Cargo.toml" --bin switch --bin issuer-sim --bin loadgen >&2 &&
      mkdir -p "$dir.new" &&
      cp "$ROOT"/target/ab-build/release/{switch,issuer-sim,loadgen} "$dir.new/" &&
      mv "$dir.new" "$dir"; then
      built=1
    fi
    git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
    [ "$built" = 1 ] || { echo "building $what ($sha) failed" >&2; rm -rf "$dir.new"; return 1; }
  fi
  echo "$dir"
}

# Makes each named variable (A, B) absolute when it names a folder: called before the script
# moves to the repository, so that folders given relative to where it started still work.
absolute_folders() {
  local side
  for side in "$@"; do
    if [ -n "${!side}" ] && [ "${!side}" != . ] && [ -d "${!side}" ]; then
      printf -v "$side" '%s' "$(cd "${!side}" && pwd)"
    fi
  done
}

stop_stack() {
  if [ ${#PIDS[@]} -gt 0 ]; then
    kill "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
  fi
  PIDS=()
}
