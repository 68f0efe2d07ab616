#!/usr/bin/env bash
# Build the Debian base image the Dockerfiles start FROM, when it is missing, with debootstrap.
#
# Why: no image registry is reachable on the machines this project is developed on, but Debian's
# package mirror is. An image built from the same suite and imported under the official name
# (debian:trixie-slim) lets the very same Dockerfiles build here and on GitHub, where the official
# image is pulled instead. See docs/adr/0003-container-builds.md.
#
# Usage: scripts/base-image.sh [SUITE]       (default trixie; tag debian:SUITE-slim)
#        FORCE=1 scripts/base-image.sh        rebuild even when the image exists
set -euo pipefail

SUITE=${1:-trixie}
TAG="debian:${SUITE}-slim"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "base-image: error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker not found: install docker.io (make setup as root) or use an official ${TAG}"
docker info >/dev/null 2>&1 || die "no Docker daemon answers: run 'make docker-up' (starts dockerd as root)"
if [ -z "${FORCE:-}" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base-image: $TAG present ($(docker image inspect -f '{{.Id}}' "$TAG" | cut -c1-19)); FORCE=1 rebuilds it"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root: run as root, or 'docker pull $TAG' where a registry is reachable"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap (make setup as root)"

start=$(date +%s)
dir=$(mktemp -d /tmp/eopack-rootfs-XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "base-image: debootstrap --variant=minbase $SUITE from $MIRROR (about a minute)"
debootstrap --variant=minbase "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
  || { tail -5 "$dir.log" >&2; die "debootstrap failed; full log: $dir.log"; }
rm -f "$dir.log"

# Make it behave like the official slim image: deb822 sources with updates and security, no docs or
# man pages installed by later apt-get calls, no apt caches kept in layers.
rm -f "$dir/etc/apt/sources.list"
cat >"$dir/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
APT
rm -rf "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* \
       "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
       "$dir"/var/log/*.log "$dir"/var/log/apt/*

tar --numeric-owner -C "$dir" -c . | docker import -c 'CMD ["bash"]' \
  -m "debootstrap --variant=minbase $SUITE $MIRROR (eopack scripts/base-image.sh)" - "$TAG" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$TAG")
echo "base-image: built $TAG in $(( $(date +%s) - start )) s, $(( size / 1000000 )) MB"
