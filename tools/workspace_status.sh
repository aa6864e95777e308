#!/usr/bin/env bash
# Bazel's --workspace_status_command (config `release`): prints STABLE_VERSION.
#
#   X.Y.Z[-PRE]      HEAD is exactly at tag vX.Y.Z[-PRE] and the tree is clean
#   <VERSION>-SNAPSHOT  otherwise (Maven's convention: the next version, from
#                       the top-level VERSION file)
#
# Never prints a `+`: OCI tags cannot hold one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

next=$(tr -d '[:space:]' <VERSION 2>/dev/null || true)
if ! [[ "$next" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
  echo "workspace_status.sh: VERSION must hold X.Y.Z, not '${next}'" >&2
  exit 1
fi

version="${next}-SNAPSHOT"
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' HEAD 2>/dev/null) &&
  [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] &&
  [[ "$tag" =~ ^v((0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?)$ ]]; then
  version=${BASH_REMATCH[1]}
fi
echo "STABLE_VERSION ${version}"
