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
packages=()
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
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
dotnet test Audience.sln -c Release --no-build --nologo \
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
projects=$(dotnet sln Audience.sln list | grep -c 'Tests\.csproj$' || true)
if [ "$files" -lt "$projects" ]; then
  echo "only $files of $projects test projects reported results" >&2
  failed=$((failed + projects - files))
  [ "$rc" -ne 0 ] || rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || [ "$rc" -ne 0 ] || rc=1
exit "$rc"
