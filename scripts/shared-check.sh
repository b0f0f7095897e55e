#!/usr/bin/env bash
# `make shared-check`: the repository keeps its own copies of what its tests need from
# ../shared, so that a clone on its own runs every test. This compares each copy with
# its original byte for byte and fails naming every file that differs or is missing on
# either side:
#
#   testdata/ucp-examples/**            ↔ $SHARED/ucp-examples/**
#   pkg/ucpschema/schemas/<version>/**  ↔ $SHARED/ucp-schemas/<version>/schemas/**  (every version on either side)
#
# The rest of $SHARED/ucp-schemas (README.md, <version>/services/) is not copied and
# not compared. Usage: scripts/shared-check.sh [SHARED_DIR] (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
if [ ! -d "$shared" ]; then
  echo "shared-check: $shared not found (it sits beside the checkout)" >&2
  exit 1
fi

problems=0 same=0
say() { echo "shared-check: $*" >&2; problems=$((problems + 1)); }

# files DIR: the files under DIR, relative to it, sorted; nothing when DIR is absent.
files() { [ -d "$1" ] && (cd "$1" && find . -type f | sed 's#^\./##' | LC_ALL=C sort) || true; }

# compare OURS THEIRS: OURS must hold exactly THEIRS' files, with the same bytes.
compare() {
  local ours=$1 theirs=$2 rel
  [ -d "$ours" ] || say "missing copy: $ours/ (the original $theirs/ exists)"
  [ -d "$theirs" ] || say "missing original: $theirs/ (only the copy $ours/ exists)"
  while IFS= read -r rel; do
    [ -n "$rel" ] || continue
    say "missing copy: $ours/$rel (the original $theirs/$rel exists)"
  done < <(LC_ALL=C comm -13 <(files "$ours") <(files "$theirs"))
  while IFS= read -r rel; do
    [ -n "$rel" ] || continue
    say "missing original: $theirs/$rel (only the copy $ours/$rel exists)"
  done < <(LC_ALL=C comm -23 <(files "$ours") <(files "$theirs"))
  while IFS= read -r rel; do
    [ -n "$rel" ] || continue
    if cmp -s "$ours/$rel" "$theirs/$rel"; then
      same=$((same + 1))
    else
      say "differs: $ours/$rel from $theirs/$rel"
    fi
  done < <(LC_ALL=C comm -12 <(files "$ours") <(files "$theirs"))
}

compare testdata/ucp-examples "$shared/ucp-examples"

versions=$( {
  (cd pkg/ucpschema/schemas 2>/dev/null && ls -d -- */) || true
  (cd "$shared/ucp-schemas" 2>/dev/null && ls -d -- */) || true
} | sed 's#/$##' | LC_ALL=C sort -u)
[ -n "$versions" ] || say "no schema versions in pkg/ucpschema/schemas nor in $shared/ucp-schemas"
for v in $versions; do
  compare "pkg/ucpschema/schemas/$v" "$shared/ucp-schemas/$v/schemas"
done

if [ "$problems" -gt 0 ]; then
  echo "shared-check: $problems difference(s) from $shared; copy the originals over (cp) and commit them" >&2
  exit 1
fi
echo "shared-check: $same files identical to $shared (testdata/ucp-examples, pkg/ucpschema/schemas: $(echo $versions))"
