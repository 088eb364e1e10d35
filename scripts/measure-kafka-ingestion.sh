#!/usr/bin/env bash
# The Kafka-mode ingestion rows of docs/performance.md in one sitting: librdkafka's mock cluster (the benchmarks'
# mock-kafka), one Silo process and one Api in Kafka mode on PostgreSQL, then the load tool: produce straight to
# user-events (kafka-ingest: the raw librdkafka limit), single events and batches of 100 through the Api.
# Build first (dotnet build Audience.sln -c Release). Usage:
#   AUDIENCE_BENCH_POSTGRES='Host=...;Username=...;Password=...;Database=EMPTY_DB' scripts/measure-kafka-ingestion.sh [OUT_DIR]
set -u
cd "$(dirname "$0")/.."
OUT=${1:-artifacts/measure-kafka}
PG=${AUDIENCE_BENCH_POSTGRES:?set AUDIENCE_BENCH_POSTGRES to a PostgreSQL database the services may create their tables in}
mkdir -p "$OUT"
LT="dotnet load-tests/Audience.LoadTests/bin/Release/net10.0/Audience.LoadTests.dll"
row() { echo "$1: $(grep -A2 '| operations' "$OUT/$2/report.md" | tail -1)"; }
stop() { kill "$1" 2>/dev/null; while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; }

dotnet tests/Audience.Benchmarks/bin/Release/net10.0/Audience.Benchmarks.dll mock-kafka 4 > "$OUT/mock.log" 2>&1 &
mock=$!
for _ in $(seq 1 30); do [ -s "$OUT/mock.log" ] && break; sleep 0.5; done
KAFKA=$(head -1 "$OUT/mock.log")
# Kafka:MaxLag off: this measures what the Api takes in; with the bound on, the Api refuses events once the one Silo
# falls 200,000 events behind on a partition, which the load tool's rates reach within seconds.
export Kafka__BootstrapServers="$KAFKA" Postgres__ConnectionString="$PG" Orleans__AdvertisedIPAddress=127.0.0.1 Kafka__MaxLag=0
dotnet Silo/Audience.Silo/bin/Release/net10.0/Audience.Silo.dll > "$OUT/silo.log" 2>&1 &
silo=$!
dotnet Api/Audience.Api/bin/Release/net10.0/Audience.Api.dll --urls http://127.0.0.1:5300 > "$OUT/api.log" 2>&1 &
api=$!
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:5300/health/ready >/dev/null 2>&1 && break; sleep 1; done

$LT kafka-ingest --target "$KAFKA" --concurrency 256 --duration 15s --warmup 5s --out "$OUT/raw" > /dev/null 2>&1; row "raw produce (librdkafka, 256 in flight)" raw
$LT ingest --target http://127.0.0.1:5300 --concurrency 64 --duration 15s --warmup 5s --out "$OUT/ingest" > /dev/null 2>&1; row "Kafka mode, single events" ingest
$LT ingest-batch --target http://127.0.0.1:5300 --concurrency 8 --duration 15s --warmup 5s --out "$OUT/batch" > /dev/null 2>&1; row "Kafka mode, batches of 100" batch

stop $api; stop $silo; stop $mock
