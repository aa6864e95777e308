#!/usr/bin/env bash
# oci_load (offline stand-in): pipe the image tarball into a container engine.
set -o errexit -o nounset -o pipefail

rlocation() {
  local dir
  for dir in "${RUNFILES_DIR:-}" "$0.runfiles" "${PWD%/*}"; do
    if [ -n "$dir" ] && [ -e "$dir/$1" ]; then
      printf '%s\n' "$dir/$1"
      return
    fi
  done
  echo "oci_load: error: $1 not found in the runfiles" >&2
  exit 1
}

TARBALL=$(rlocation "{{tarball}}")
LOADER="{{loader}}"
if [ -n "$LOADER" ]; then
  exec "$(rlocation "$LOADER")" < "$TARBALL"
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  exec docker load --input "$TARBALL"
elif command -v podman >/dev/null; then
  exec podman load --input "$TARBALL"
fi
echo "oci_load: error: neither a Docker engine nor podman is available" >&2
exit 1
