#!/usr/bin/env sh
# Copies the shipped pipelines into the kustomize base, where its
# ConfigMap generator can read them: kustomize only loads files in or
# below a kustomization's directory, and a remote base
# (`kubectl apply -k <repo>//deploy/overlays/newrelic-us`) sees only what
# is committed there. pipelines/ is the original; run this after changing
# it (the suite fails while the copies differ: engine/cli/tests/deploy.rs).
#
#   deploy/sync-pipelines.sh           write the copies
#   deploy/sync-pipelines.sh --check   exit 1 (and name the files) if stale
set -eu
cd "$(dirname "$0")/.."

# The files the ConfigMap carries (deploy/base/kustomization.yaml lists
# the same names).
files="postgres.pipe mysql.pipe sanitize_pii.pipe newrelic.pipe"
target=deploy/base/pipelines

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

stale=0
for f in $files; do
  if ! cmp -s "pipelines/$f" "$target/$f"; then
    if $check; then
      echo "$target/$f differs from pipelines/$f: run deploy/sync-pipelines.sh" >&2
      stale=1
    else
      mkdir -p "$target"
      cp "pipelines/$f" "$target/$f"
      echo "updated $target/$f"
    fi
  fi
done
# A copy whose original is gone would ship a pipeline nobody maintains.
for path in "$target"/*.pipe; do
  [ -e "$path" ] || continue
  name=$(basename "$path")
  case " $files " in
    *" $name "*) ;;
    *)
      if $check; then
        echo "$path is not one of the shipped pipelines ($files)" >&2
        stale=1
      else
        rm "$path"
        echo "removed $path"
      fi
      ;;
  esac
done
exit $stale
