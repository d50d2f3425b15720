#!/usr/bin/env bash
# Instruction counts per operation under callgrind: runs examples/yield_loop
# at N1 and N2 operations and prints (Ir(N2) - Ir(N1)) / (N2 - N1), which
# cancels start-up and tear-down.  Usage: scripts/callgrind.sh [modes...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example yield_loop ${SYLVAN_CARGO_FLAGS:-} >/dev/null
bin=target/release/examples/yield_loop
n1=100000; n2=300000
ir() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" >/dev/null 2>&1
  local total; total=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
  rm -f "$out"; echo "$total"
}
for mode in "${@:-w1 w1d w1r bare}"; do
  for m in $mode; do
    a=$(ir "$m" $n1); b=$(ir "$m" $n2)
    case $m in
      w1)   per=$(( (b - a) / (2 * (n2 - n1)) )); echo "W1 yield ping-pong: $per instructions/yield";;
      w1d)  per=$(( (b - a) / (2 * (n2 - n1)) )); echo "W1d yield from depth 3: $per instructions/yield";;
      w1r)  per=$(( (b - a) / (n2 - n1) )); echo "W1r raw switch: $per instructions/round-trip";;
      bare) per=$(( (b - a) / (n2 - n1) )); echo "B corosensei bare round trip: $per instructions/round-trip";;
    esac
  done
done
