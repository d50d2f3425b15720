#!/usr/bin/env bash
# The switch benchmarks on both switches in one run: benches/switch.rs built
# as usual (sylvan's own switch on x86-64 Linux; W1r and the bare rings of
# both switches), then built with RUSTFLAGS="--cfg sylvan_corosensei" in
# target/corosensei for the hub-level W1/W1d on corosensei. Prints the W/B
# lines of both runs together at the end. Benchmarks run pinned to one CPU
# (SYLVAN_BENCH_CPU, default 1) when taskset is available.
#
# Usage: scripts/bench-switch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cpu=${SYLVAN_BENCH_CPU:-1}
pin=()
if command -v taskset >/dev/null; then pin=(taskset -c "$cpu"); fi
coro_env=(env RUSTFLAGS="${RUSTFLAGS:-} --cfg sylvan_corosensei" CARGO_TARGET_DIR=target/corosensei)
own_out=$(mktemp); coro_out=$(mktemp)
trap 'rm -f "$own_out" "$coro_out"' EXIT

cargo bench --bench switch --no-run
"${coro_env[@]}" cargo bench --bench switch --no-run

echo "== benches/switch.rs, default build"
"${pin[@]}" cargo bench --bench switch | tee "$own_out"
echo "== benches/switch.rs, --cfg sylvan_corosensei (W1 and W1d only)"
"${pin[@]}" "${coro_env[@]}" cargo bench --bench switch -- '^W1d? yield' | tee "$coro_out"

echo
echo "== both switches"
hub='^W1d? [^:]*: '; raw='^(W1r|B) [^:]*: '
{ grep -E "$hub" "$own_out"; grep -E "$hub" "$coro_out"; } | grep -v ' over bare ring ' | sort -s -k1,1
grep -E "$raw" "$own_out"
grep -E "$hub" "$own_out" | grep ' over bare ring ' || true
