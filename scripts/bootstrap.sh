#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine: system packages (as root) and uv.
# Idempotent; called by `make setup` (and so by `make demo` and `make test`).
set -euo pipefail

# System packages the tools and tests need. nodejs evaluates CWL JavaScript expressions.
# postgresql-15-postgis-3 (pulls postgresql-15) and nginx: the local STAC API (`eopack stac up`).
APT_PACKAGES=(git curl ca-certificates python3 python3-venv nodejs postgresql-15-postgis-3 nginx
  docker.io debootstrap docker-registry  # containers: dockerd, base image, local registry
  slurm-wlm munge  # a single-node Slurm for the toil-slurm runner (`make slurm-up`)
  podman skopeo)  # --engine podman: containers without a Docker daemon, images from OCI archives
APT_PACKAGES+=(redis-server)  # the Toil WES broker (`eopack wes up`, wes/README.md)
APT_PACKAGES+=(npm chromium)  # STAC Browser's build (scripts/stac-browser.sh); the headless browser tests
APT_PACKAGES+=(iproute2 util-linux)  # `ip netns` and `nsenter`: the multi-node Slurm (`eopack slurm up --nodes 3`)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# python3/node may come from elsewhere (pyenv, nvm); only their commands matter.
provided=()
command -v node >/dev/null 2>&1 && provided+=(nodejs)
command -v npm >/dev/null 2>&1 && provided+=(npm)  # NodeSource's nodejs bundles it
command -v python3 >/dev/null 2>&1 && provided+=(python3)
still=()
for pkg in "${missing[@]}"; do
  [[ " ${provided[*]} " == *" $pkg "* ]] || still+=("$pkg")
done
missing=("${still[@]}")
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    # Services (postgres, nginx) are started by eopack on our own ports, never by their packages:
    # a temporary policy-rc.d makes the maintainer scripts skip starting them.
    policy_rc_d=/usr/sbin/policy-rc.d
    if [ ! -e "$policy_rc_d" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy_rc_d" && chmod +x "$policy_rc_d"
      trap 'rm -f "$policy_rc_d"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${missing[*]} (not root, so not installing them myself)" >&2
  fi
fi

# uv: use the one on PATH, else install it with pip into .cache/uv (no system pip needed) and copy
# its binaries where a plain shell finds them (the README's commands start with `uv run`):
# /usr/local/bin as root, else ~/.local/bin (on PATH in Debian's default ~/.profile).
if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x .cache/uv/bin/uv ]; then
    echo "bootstrap: installing uv into .cache/uv"
    python3 -m venv .cache/uv
    .cache/uv/bin/pip install --quiet uv
  fi
  if [ "$(id -u)" = 0 ]; then bindir=/usr/local/bin; else bindir="$HOME/.local/bin"; fi
  mkdir -p "$bindir"
  install -m 755 .cache/uv/bin/uv .cache/uv/bin/uvx "$bindir"/
  echo "bootstrap: uv installed as $bindir/uv"
  case ":$PATH:" in *":$bindir:"*) ;; *) echo "bootstrap: add $bindir to your PATH to run uv from a shell" >&2 ;; esac
fi
