#!/usr/bin/env bash
# Lists the module's packages that link libtorch (torch) or do not (pure),
# counting what their tests import too. `make test` runs the pure ones under
# the race detector.
set -euo pipefail
want=${1:?usage: packages.sh pure|torch}
go list -test -f '{{.ImportPath}} {{range .Deps}}{{if eq . "github.com/sugarme/gotch"}}TORCH{{end}}{{end}}' ./... |
awk -v want="$want" '
  $1 ~ /\.test$/ { next }
  { pkg = $1; sub(/_test$/, "", pkg); all[pkg] = 1; if ($0 ~ /TORCH/) torch[pkg] = 1 }
  END {
    for (p in all) {
      if (want == "torch" && (p in torch)) print p
      if (want == "pure" && !(p in torch)) print p
    }
  }' | sort
