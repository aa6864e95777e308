#!/usr/bin/env bash
# Build-speed benchmark: what a new user and a developer wait for.
#
#   tools/benchmarks/bazel_benchmark.sh [--keep]
#
# In a fresh clone (a new folder, so a new Bazel output base) of the current
# HEAD, with a fresh offline Bazel install (SLIPWAY_BAZEL_HOME in a temp dir),
# a fresh output root and fresh repository and disk caches, it times:
#   1. bootstrap: installing Bazel 7.7.1 (offline mode; skipped online),
#   2. cold `tools/bazel test //...`,
#   3. warm no-op `tools/bazel test //...`,
#   4. `tools/bazel test //...` after a change to service/app.py,
#   5. after a change to lib/slipway/metrics.py (the service's change reverted),
#   6. after reverting that too (everything found in a cache),
#   7. `tools/bazel run //service:load` twice: the second finds the image in
#      podman (the machine's own store) and loads nothing.
# Prints a Markdown table: seconds, and how many test targets ran (not cached). rules_python's
# pip keeps no wheel downloads in ~/.cache/pip here, so every cold run fetches every wheel.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
keep=${1:-}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench.XXXXXX")
cleanup() {
  local output_base
  output_base=$(cd "$scratch/clone" 2>/dev/null && tools/bazel --output_user_root="$scratch/output" info output_base 2>/dev/null) || true
  (cd "$scratch/clone" 2>/dev/null && tools/bazel --output_user_root="$scratch/output" shutdown >/dev/null 2>&1) || true
  # tools/bazel may put the sandboxes in /dev/shm, outside the output base.
  if [ -n "$output_base" ]; then
    rm -rf "/dev/shm/bazel-sandbox.$(printf %s "$output_base" | sha256sum | cut -d' ' -f1)"
  fi
  if [ "$keep" != --keep ]; then rm -rf "$scratch"; fi
}
trap cleanup EXIT

git clone -q "$repo" "$scratch/clone"
cd "$scratch/clone"
export SLIPWAY_BAZEL_HOME="$scratch/bazel-home"
export SLIPWAY_REPOSITORY_CACHE="$scratch/repository-cache" SLIPWAY_DISK_CACHE="$scratch/disk-cache"
bazel=(tools/bazel --output_user_root="$scratch/output")

seconds() {
  local start end
  start=$(date +%s.%N)
  "$@" >>"$scratch/log" 2>&1 || { echo "failed: $* (log: $scratch/log)" >&2; keep=--keep; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.1f}')"
}

# Tests that ran (not cached) in the last step's output.
ran() { grep -E '^//[^ ]+ +(PASSED|FAILED|FLAKY|TIMEOUT)' "$scratch/step" | grep -vc '(cached)' || true; }
step() {
  : >"$scratch/step"
  local start end
  start=$(date +%s.%N)
  "$@" >"$scratch/step" 2>&1 || { cat "$scratch/step" >>"$scratch/log"; echo "failed: $* (log: $scratch/log)" >&2; keep=--keep; exit 1; }
  end=$(date +%s.%N)
  cat "$scratch/step" >>"$scratch/log"
  python3 -c "print(f'{$end - $start:.1f}')"
}

bootstrap=$(seconds "${bazel[@]}" info release)
cold=$(step "${bazel[@]}" test //...)
cold_ran=$(ran)
warm=$(step "${bazel[@]}" test //...)
warm_ran=$(ran)
# Changes of content (a comment), kept as ruff formats them: the style test runs too.
printf '\n\n# changed by the benchmark\n' >>service/app.py
service=$(step "${bazel[@]}" test //...)
service_ran=$(ran)
git checkout -q service/app.py
printf '\n\n# changed by the benchmark\n' >>lib/slipway/metrics.py
metrics=$(step "${bazel[@]}" test //...)
metrics_ran=$(ran)
git checkout -q lib/slipway/metrics.py
reverted=$(step "${bazel[@]}" test //...)
reverted_ran=$(ran)
load_first=$(seconds "${bazel[@]}" run //service:load)
load_again=$(seconds "${bazel[@]}" run //service:load)

cat <<TABLE
| step | seconds | tests run (not cached) |
| --- | ---: | ---: |
| bootstrap (install Bazel 7.7.1, start the server) | $bootstrap | |
| cold \`tools/bazel test //...\` | $cold | $cold_ran |
| warm no-op \`tools/bazel test //...\` | $warm | $warm_ran |
| after a change to service/app.py | $service | $service_ran |
| after a change to lib/slipway/metrics.py | $metrics | $metrics_ran |
| after reverting it | $reverted | $reverted_ran |
| \`tools/bazel run //service:load\` (streams the image unless podman holds it) | $load_first | |
| the same again, nothing changed | $load_again | |
TABLE
