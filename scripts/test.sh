#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine with the .NET 10 SDK:
# installs what the tests need, restores, builds strictly, checks formatting, runs every test
# project, and closes with "N passed, N failed, N skipped" counted from the test results.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n== %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the suites use. Installed only when missing, so a warm machine skips apt.
# PostgreSQL for the stores; kcat, the independent client that checks the topics (it brings Debian's librdkafka
# for itself). The service and the tests' mock cluster use the librdkafka of the librdkafka.redist package.
# Go, sprig, ghodss/yaml and gojsonschema for helm/check, which renders the chart as helm would (helm itself has no
# package here), and yamllint over what it renders (tests/Audience.Api.Tests/Deploy/ChartTests).
packages=(postgresql kcat golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev
  golang-github-xeipuuv-gojsonschema-dev yamllint)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

# A PostgreSQL server on 127.0.0.1:5432, with a password for TCP logins. The tests create and drop their own
# databases; AUDIENCE_TEST_POSTGRES points them at the server (set it yourself to use another one).
if [ -z "${AUDIENCE_TEST_POSTGRES:-}" ]; then
  log "PostgreSQL"
  cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    as_root pg_createcluster 15 main
    cluster="15 main"
  fi
  if ! pg_lsclusters --no-header | awk '{print $4}' | grep -q online; then
    as_root pg_ctlcluster $cluster start
  fi
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
  as_postgres psql -q -c "ALTER USER postgres PASSWORD 'audience-tests'" >/dev/null
  export AUDIENCE_TEST_POSTGRES="Host=127.0.0.1;Port=5432;Username=postgres;Password=audience-tests"
  # One test restarts the server mid-stream.
  sudo_prefix=""; [ "$(id -u)" -eq 0 ] || sudo_prefix="sudo "
  export AUDIENCE_TEST_POSTGRES_RESTART="${sudo_prefix}pg_ctlcluster $cluster restart"
fi

# An Aerospike server for the client's tests: the development build beside the repository (../shared/aerospike), on a
# free port, stopped on exit. AUDIENCE_TEST_AEROSPIKE=host:port points the tests at another one instead.
if [ -z "${AUDIENCE_TEST_AEROSPIKE:-}" ]; then
  aerospike="$root/../shared/aerospike/aerospike-server"
  if [ -x "$aerospike" ]; then
    log "Aerospike"
    as_dir=$(mktemp -d)
    as_port=3000
    port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    while port_busy "$as_port" || port_busy $((as_port + 1)) || port_busy $((as_port + 2)); do as_port=$((as_port + 10)); done
    trap '"$aerospike" stop "$as_dir" >/dev/null 2>&1 || true; rm -rf "$as_dir"' EXIT
    if "$aerospike" start "$as_dir" "$as_port"; then
      export AUDIENCE_TEST_AEROSPIKE="127.0.0.1:$as_port"
    else
      log "Aerospike: the server beside the repository did not start (output above); its tests are skipped"
    fi
  else
    log "Aerospike: no server (../shared/aerospike not found); its tests are skipped"
  fi
fi

log "restore"
dotnet restore Audience.sln

log "build (warnings are errors)"
dotnet build Audience.sln -c Release --no-restore -nologo

log "format check"
dotnet format Audience.sln --verify-no-changes --no-restore

log "tests"
results="$root/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"
set +e
# One test project at a time: the PostgreSQL server is shared, and one test restarts it.
dotnet test Audience.sln -c Release --no-build --nologo -m:1 \
  --results-directory "$results" --logger "trx" --logger "console;verbosity=minimal"
rc=$?
set -e

passed=0; failed=0; skipped=0; files=0
for f in "$results"/*.trx; do
  [ -e "$f" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*' "$f")
  get() { printf '%s' "$counters" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  total=$(get total); executed=$(get executed)
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + total - executed))
done
projects=$(dotnet sln Audience.sln list | grep -c '\.Tests\.csproj$' || true)
if [ "$files" -lt "$projects" ]; then
  echo "only $files of $projects test projects reported results" >&2
  failed=$((failed + projects - files))
  [ "$rc" -ne 0 ] || rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
exit "$rc"
