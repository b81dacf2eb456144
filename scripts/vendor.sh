#!/usr/bin/env bash
# Vendor the dashboard's third-party JavaScript into dialer/web/vendor/ (package data: it ships
# in the wheel), pinned by version and by the registry's sha512 integrity, each with its
# licence. The result is committed, so running the dashboard needs no network and no build
# step; rerun this only to change a pinned version.
#
#   scripts/vendor.sh            download, verify, unpack (idempotent)
#   scripts/vendor.sh --check    verify the committed files against the pinned tarballs
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENDOR="$ROOT/dialer/web/vendor"

# name  version  integrity (npm `dist.integrity`)  files to keep (from the package root)
PACKAGES=(
    "uplot 1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw== dist/uPlot.esm.js dist/uPlot.min.css LICENSE"
)

log() { printf 'vendor: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v npm >/dev/null 2>&1 || die "npm not found (apt-get install npm, or Node.js from nodejs.org)"
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for entry in "${PACKAGES[@]}"; do
    read -r name version integrity files <<<"$entry"
    read -r -a keep <<<"$files"
    log "$name@$version"
    (cd "$WORK" && npm pack --silent "$name@$version" >/dev/null) || die "npm pack $name@$version failed"
    tarball="$WORK/$name-$version.tgz"
    [ -f "$tarball" ] || die "npm pack wrote no $tarball"
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    [ "$actual" = "$integrity" ] || die "$name@$version: integrity $actual, pinned $integrity"
    mkdir -p "$WORK/$name"
    tar -xzf "$tarball" -C "$WORK/$name"
    dest="$VENDOR/$name"
    mkdir -p "$dest"
    for f in "${keep[@]}"; do
        src="$WORK/$name/package/$f"
        [ -f "$src" ] || die "$name@$version has no $f"
        if [ "$CHECK" -eq 1 ]; then
            cmp -s "$src" "$dest/$(basename "$f")" || die "$dest/$(basename "$f") differs from $name@$version"
        else
            cp "$src" "$dest/$(basename "$f")"
        fi
    done
    [ "$CHECK" -eq 1 ] || printf '%s %s %s\n' "$name" "$version" "$integrity" >"$dest/VERSION"
done
log "done: $VENDOR"
