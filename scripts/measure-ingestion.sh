#!/usr/bin/env bash
# The ingestion rows of docs/performance.md in one sitting: bare Kestrel (the limit), then the embedded service on a
# fresh data directory per row. Build first: dotnet build Audience.sln -c Release. Usage:
#   scripts/measure-ingestion.sh [OUT_DIR] [ROWS...]     rows: bare ingest batch q5000 q10000 (default: all)
# Each row: 5 s of warm-up left out, 15 s measured (20 s for qualify); the load tool shares the machine's cores.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-artifacts/measure}; shift || true
ROWS=${*:-bare ingest batch q5000 q10000}
mkdir -p "$OUT"
LT="dotnet load-tests/Audience.LoadTests/bin/Release/net10.0/Audience.LoadTests.dll"
BENCH="dotnet tests/Audience.Benchmarks/bin/Release/net10.0/Audience.Benchmarks.dll"
API="${API:-$PWD/Api/Audience.Api/bin/Release/net10.0/Audience.Api.dll}"
row() { echo "$1: $(grep -A2 '| operations' "$OUT/$2/report.md" | tail -1)"; }
# SIGTERM, then wait for the process to be gone: a graceful stop takes seconds, and the next row needs the port.
stop() { kill "$1" 2>/dev/null; while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; }
wait_ready() { for _ in $(seq 1 60); do curl -sf "$1/health/ready" >/dev/null 2>&1 && return 0; sleep 1; done; echo "$1 not ready" >&2; return 1; }
for r in $ROWS; do
  if [ "$r" = bare ]; then
    if curl -s -o /dev/null http://127.0.0.1:5090/; then echo "port 5090 is taken: stop what listens there first" >&2; exit 1; fi
    $BENCH bare-kestrel --urls http://127.0.0.1:5090 > "$OUT/bare.log" 2>&1 &
    bare=$!
    sleep 3
    $LT ingest --target http://127.0.0.1:5090 --concurrency 64 --segments 0 --duration 15s --warmup 5s --out "$OUT/bare-ingest" > /dev/null 2>&1; row "bare Kestrel, single events" bare-ingest
    $LT ingest-batch --target http://127.0.0.1:5090 --concurrency 8 --segments 0 --duration 15s --warmup 5s --out "$OUT/bare-batch" > /dev/null 2>&1; row "bare Kestrel, batches of 100" bare-batch
    stop $bare
    continue
  fi
  if curl -s -o /dev/null http://127.0.0.1:5200/; then echo "port 5200 is taken: stop what listens there first" >&2; exit 1; fi
  data=$(mktemp -d)
  (cd "$data" && echo $BASHPID > pid && DataDirectory="$data/data" exec dotnet "$API" --urls http://127.0.0.1:5200 > "$data/service.log" 2>&1) &
  sleep 1
  service=$(cat "$data/pid")
  wait_ready http://127.0.0.1:5200 || { stop $service; continue; }
  case $r in
    ingest) $LT ingest --target http://127.0.0.1:5200 --concurrency 64 --duration 15s --warmup 5s --out "$OUT/ingest" > /dev/null 2>&1; row "embedded, single events" ingest;;
    batch) $LT ingest-batch --target http://127.0.0.1:5200 --concurrency 8 --duration 15s --warmup 5s --out "$OUT/batch" > /dev/null 2>&1; row "embedded, batches of 100" batch;;
    q5000|q10000) $LT qualify --target http://127.0.0.1:5200 --rate "${r#q}" --duration 20s --warmup "${QWARMUP:-5s}" --users "${USERS:-100000}" --segments 20 --out "$OUT/$r" > /dev/null 2>&1; row "time to qualify, ${r#q}/s offered" "$r";;
  esac
  stop $service
  rm -rf "$data"
done
