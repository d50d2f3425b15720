#!/usr/bin/env bash
# Instruction counts per operation under callgrind, on both switches in one
# run. Runs examples/yield_loop at N1 and N2 operations and prints
# (Ir(N2) - Ir(N1)) / (N2 - N1), which cancels start-up and tear-down.
#
# The hub-level workloads (W1, W1d, W1d on different chains, the greenlet
# record's round trip) run on two builds of the example: the default one
# (sylvan's own switch on x86-64 Linux) and one built with
# RUSTFLAGS="--cfg sylvan_corosensei" in target/corosensei. The raw switch
# workloads (W1r, the bare ring at depth 0/1/3, bare corosensei) run on the
# default build, which contains both switches.
#
# Usage: scripts/callgrind.sh [modes...]
#   modes: w1 w1d w1d-chains w1r-core w1r ring0 ring1 ring3 bare
#          w8 w2-1k (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
modes=${*:-w1 w1d w1d-chains w1r-core w1r ring0 ring1 ring3 bare w8 w2-1k}

cargo build -q --release --example yield_loop ${SYLVAN_CARGO_FLAGS:-} >/dev/null
RUSTFLAGS="${RUSTFLAGS:-} --cfg sylvan_corosensei" CARGO_TARGET_DIR=target/corosensei \
  cargo build -q --release --example yield_loop ${SYLVAN_CARGO_FLAGS:-} >/dev/null
builds=(target/release/examples/yield_loop target/corosensei/release/examples/yield_loop)
default=${builds[0]}

n1=100000; n2=300000
ir() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1
  local total; total=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
  rm -f "$out"; echo "$total"
}
# per BIN MODE DIVISOR: instructions per operation
per() {
  local a b; a=$(ir "$1" "$2" $n1); b=$(ir "$1" "$2" $n2)
  echo $(( (b - a) / ($3 * (n2 - n1)) ))
}
# Switches compiled into the default build (the own switch only on x86-64 Linux).
raw_switches() {
  if "$default" w1r-own 1 >/dev/null 2>&1; then echo "own:own switch"; fi
  echo "coro:corosensei switch"
}

for m in $modes; do
  case $m in
    w1|w1d|w1d-chains|w1r-core)
      for bin in "${builds[@]}"; do
        sw=$("$bin" switch)
        case $m in
          w1) echo "W1 yield ping-pong [$sw]: $(per "$bin" w1 2) instructions/yield";;
          w1d) echo "W1d yield from depth 3 [$sw]: $(per "$bin" w1d 2) instructions/yield";;
          w1d-chains) echo "W1d yield from depth 3, different chains [$sw]: $(per "$bin" w1d-chains 2) instructions/yield";;
          w1r-core) echo "W1r greenlet record round trip [$sw]: $(per "$bin" w1r-core 1) instructions/round-trip";;
        esac
      done;;
    w1r|ring0|ring1|ring3)
      while IFS=: read -r tag sw; do
        case $m in
          w1r) echo "W1r raw switch [$sw]: $(per "$default" "w1r-$tag" 1) instructions/round-trip";;
          ring*) echo "B bare ring depth ${m#ring} [$sw]: $(per "$default" "$m-$tag" 1) instructions/yield";;
        esac
      done < <(raw_switches);;
    bare) echo "B corosensei bare round trip: $(per "$default" bare 1) instructions/round-trip";;
    w8) echo "W8 queue handoff [$("$default" switch)]: $(per "$default" w8 1) instructions/item";;
    w2-1k) echo "W2 spawn+join, 1k alive [$("$default" switch)]: $(per "$default" w2-1k 1) instructions/greenlet";;
    *) echo "unknown mode $m" >&2; exit 2;;
  esac
done
