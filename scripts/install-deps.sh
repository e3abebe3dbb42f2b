#!/usr/bin/env bash
# Installs what building and testing tsumiki needs, and nothing twice:
#   - the Debian packages in $APT_PACKAGES (apt-get update + install only
#     when one of them is missing; sudo when not root),
#   - the Go modules of go.mod (go mod download),
#   - staticcheck $STATICCHECK_VERSION into $GOBIN, unless that version,
#     built by this Go, is already there.
# Called by `make deps`, which sets the variables; runnable on its own from
# the repository root.
set -euo pipefail

APT_PACKAGES="${APT_PACKAGES-ca-certificates gcc libc6-dev}"
STATICCHECK_VERSION="${STATICCHECK_VERSION:-v0.8.2}"
export PATH="/usr/local/go/bin:${HOME:-/root}/go/bin:$PATH"
GO="${GO:-go}"
GOBIN="${GOBIN:-$("$GO" env GOPATH | cut -d: -f1)/bin}"

sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

missing=()
for p in $APT_PACKAGES; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: apt-get install ${missing[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

"$GO" mod download

# `go version -m` prints "PATH: goX.Y.Z" then "mod honnef.co/go/tools vA.B.C ...".
info="$("$GO" version -m "$GOBIN/staticcheck" 2>/dev/null || true)"
want_go="$("$GO" env GOVERSION)"
if ! grep -Eq "^\s+mod\s+honnef\.co/go/tools\s+${STATICCHECK_VERSION//./\\.}\s" <<<"$info" ||
	! head -n1 <<<"$info" | grep -q ": ${want_go}\$"; then
	echo "deps: go install honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
	GOBIN="$GOBIN" "$GO" install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi
