#!/usr/bin/env bash
# gofmt (fails on any unformatted file), go vet and staticcheck over the
# whole module. Called by `make lint` after `make deps`; runnable on its own
# from the repository root.
set -euo pipefail

export PATH="/usr/local/go/bin:${HOME:-/root}/go/bin:$PATH"
GO="${GO:-go}"
STATICCHECK="${STATICCHECK:-$("$GO" env GOPATH | cut -d: -f1)/bin/staticcheck}"

echo "lint: gofmt"
# Skip what is not source: VCS, caches, build output, data, test fixtures.
mapfile -t files < <(find . \( -path ./.git -o -path ./.cache -o -path ./bin -o -path ./tmp \
	-o -path ./data -o -name testdata \) -prune -o -name '*.go' -print)
if [ ${#files[@]} -gt 0 ]; then
	bad="$(gofmt -l "${files[@]}")"
	if [ -n "$bad" ]; then
		echo "gofmt: run gofmt -w on:"
		echo "$bad"
		exit 1
	fi
fi

echo "lint: go vet ./..."
"$GO" vet ./...

echo "lint: staticcheck ./..."
"$STATICCHECK" ./...
