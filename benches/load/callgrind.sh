#!/usr/bin/env bash
# Instructions per request, counted by callgrind (exact and repeatable on a noisy machine),
# for each in-process stack of benches/load/driver.rs. Only `measured` (N requests after
# a warm-up) is counted.
#
#   benches/load/callgrind.sh                  # all stacks, N=20000, about a minute
#   STACKS="bare ours_deny" N=5000 benches/load/callgrind.sh
#
# Writes target/callgrind/results.csv (stack, instructions per request, added over bare)
# and, per stack, target/callgrind/<stack>.out (open with callgrind_annotate or
# kcachegrind) and <stack>.txt (callgrind_annotate: self instructions per function).
# Totals include building each request (headers, a peer address): compare the added column.
set -euo pipefail
cd "$(dirname "$0")/../.."

N=${N:-20000}
STACKS=${STACKS:-"bare ours ours_headers ours_deny governor governor_headers governor_deny bare_served ours_peer_ip ours_client_ip ours_header_key"}
OUT_DIR=${OUT_DIR:-target/callgrind}

if ! command -v valgrind >/dev/null; then
    apt-get update -qq && apt-get install -y -qq valgrind
fi
cargo build --release --features axum --example load_driver
BIN=target/release/examples/load_driver
mkdir -p "$OUT_DIR"
CSV="$OUT_DIR/results.csv"
echo "stack,n,instructions,per_request,added_over_bare" >"$CSV"

# The keyed stacks send requests shaped as a server hands them over (a peer address,
# forwarded headers); their baseline is bare_served.
bare=
bare_served=
for stack in $STACKS; do
    out="$OUT_DIR/$stack.out"
    valgrind --tool=callgrind --toggle-collect='*measured*' --callgrind-out-file="$out" \
        "$BIN" "$stack" "$N" >/dev/null 2>"$OUT_DIR/$stack.log"
    total=$(awk '/^totals:/ { print $2 }' "$out")
    per=$(python3 -c "print(f'{$total / $N:.0f}')")
    [ "$stack" = bare ] && bare=$per
    [ "$stack" = bare_served ] && bare_served=$per
    base=$bare
    case $stack in ours_peer_ip | ours_client_ip | ours_header_key) base=$bare_served ;; esac
    added=
    [ -n "$base" ] && added=$((per - base))
    echo "$stack,$N,$total,$per,$added" | tee -a "$CSV"
    callgrind_annotate --inclusive=no "$out" >"$OUT_DIR/$stack.txt" 2>/dev/null || true
done
