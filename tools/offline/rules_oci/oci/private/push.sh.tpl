#!/usr/bin/env bash
# oci_push (offline stand-in): push by digest, then tag, with crane.
set -o errexit -o nounset -o pipefail

rlocation() {
  local dir
  for dir in "${RUNFILES_DIR:-}" "$0.runfiles" "${PWD%/*}"; do
    if [ -n "$dir" ] && [ -e "$dir/$1" ]; then
      printf '%s\n' "$dir/$1"
      return
    fi
  done
  echo "oci_push: error: $1 not found in the runfiles" >&2
  exit 1
}

die() { echo "oci_push: error: $*" >&2; exit 1; }

IMAGE_DIR=$(rlocation "{{image_dir}}")
REPOSITORY="{{repository}}"
REPOSITORY_FILE="{{repository_file}}"
TAGS_FILE="{{tags}}"
if [ -n "$REPOSITORY_FILE" ]; then
  REPOSITORY=$(tr -d '[:space:]' < "$(rlocation "$REPOSITORY_FILE")")
fi
TAGS=()
if [ -n "$TAGS_FILE" ]; then
  while IFS= read -r tag || [ -n "$tag" ]; do
    [ -n "$tag" ] && TAGS+=("$tag")
  done < "$(rlocation "$TAGS_FILE")"
fi

while [ $# -gt 0 ]; do
  case "$1" in
    -r | --repository) [ $# -ge 2 ] || die "$1 needs a value"; REPOSITORY=$2; shift 2 ;;
    --repository=*) REPOSITORY=${1#--repository=}; shift ;;
    -t | --tag) [ $# -ge 2 ] || die "$1 needs a value"; TAGS+=("$2"); shift 2 ;;
    --tag=*) TAGS+=("${1#--tag=}"); shift ;;
    *) die "unknown argument '$1' (expected -r|--repository R, -t|--tag T)" ;;
  esac
done

[ -n "$REPOSITORY" ] || die "no repository: set 'repository' or pass --repository"
case "${REPOSITORY##*/}" in *:* | *@*) die "repository '$REPOSITORY' must not hold a tag or digest" ;; esac
command -v crane >/dev/null || die "crane not found on PATH (Debian package 'crane')"

DIGEST=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$IMAGE_DIR/index.json" | head -n 1 | cut -d'"' -f4)
[ -n "$DIGEST" ] || die "$IMAGE_DIR/index.json names no manifest"

crane push "$IMAGE_DIR" "$REPOSITORY@$DIGEST"
for tag in ${TAGS[@]+"${TAGS[@]}"}; do
  crane tag "$REPOSITORY@$DIGEST" "$tag"
done
