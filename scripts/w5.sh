#!/usr/bin/env bash
# W5 of BENCHMARKS.md: crawl the 2,000-page static site served by nginx on
# 127.0.0.1:8089 with the normal crawler (default options, JSON lines to a
# file, per-request timeouts on; robots.txt off for the local site), nginx
# pinned to CPU 0 and the crawler to CPU 1. Installs nginx from Debian's
# packages if needed, generates the site, starts nginx, stops it after.
#
#   scripts/w5.sh [RUNS]     (default 5 runs; prints the median)
#   W5_KEEP=1 scripts/w5.sh  keeps the site, outputs and stats for inspection
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shared=${SYLVAN_SHARED:-../shared}
if [ ! -f "$shared/w5/gen-site.py" ] || [ ! -f "$shared/w5/nginx.conf" ]; then
  echo "w5.sh: the W5 fixtures (w5/gen-site.py, w5/nginx.conf) are not in '$shared';" >&2
  echo "       set SYLVAN_SHARED to the project's shared folder (the one with BENCHMARKS.md)" >&2
  exit 2
fi
if ! command -v nginx >/dev/null; then
  echo "installing nginx (Debian package)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || \
   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >/dev/null
fi
cargo build --release --example crawler >/dev/null
work=$(mktemp -d)
trap 'kill $(cat "$work/run/nginx.pid" 2>/dev/null) 2>/dev/null || true; [ -n "${W5_KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/run/nginx-tmp"
python3 "$shared/w5/gen-site.py" "$work/site-data" >/dev/null
cp "$shared/w5/nginx.conf" "$work/nginx.conf"
chown -R www-data "$work/run" 2>/dev/null || true
chmod -R a+rX "$work"
taskset -c 0 nginx -p "$work/" -c nginx.conf &
for _ in $(seq 50); do
  curl -sf -o /dev/null http://127.0.0.1:8089/index.html 2>/dev/null && break
  python3 - <<'PY' 2>/dev/null && break
import urllib.request; urllib.request.urlopen("http://127.0.0.1:8089/index.html", timeout=1)
PY
  sleep 0.1
done
# The clock without a fork where bash has one ($EPOCHREALTIME, bash 5):
# $(date) would add a process start (about 1 ms here) to each crawl of
# about 60 ms. LC_ALL=C keeps its decimal point a point.
export LC_ALL=C
rates=()
for i in $(seq "$runs"); do
  out="$work/pages-$i.jsonl"
  start=${EPOCHREALTIME:-$(date +%s.%N)}
  taskset -c 1 target/release/examples/crawler http://127.0.0.1:8089/index.html \
    --no-robots --no-progress -o "$out" --stats "$work/stats-$i.json" 2>"$work/err-$i.txt"
  end=${EPOCHREALTIME:-$(date +%s.%N)}
  pages=$(grep -c '"error":null' "$out" || true)
  total=$(wc -l < "$out")
  if [ "$pages" -ne 2000 ] || [ "$total" -ne 2000 ]; then
    echo "W5 run $i fetched $pages good pages of $total lines (want 2000)" >&2
    cat "$work/err-$i.txt" >&2
    exit 1
  fi
  rate=$(python3 -c "print(2000/($end-$start))")
  echo "run $i: $rate pages/s (wall time of the whole process)" >&2
  rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
printf 'W5 crawl 2000 pages: %.0f pages/s\n' "$median"
