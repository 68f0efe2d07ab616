#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine: system packages (as root) and uv.
# Idempotent; called by `make setup` (and so by `make demo` and `make test`).
set -euo pipefail

# System packages the tools and tests need. nodejs evaluates CWL JavaScript expressions.
APT_PACKAGES=(git curl ca-certificates python3 python3-venv nodejs)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# python3/node may come from elsewhere (pyenv, nvm); only their commands matter.
command -v node >/dev/null 2>&1 && missing=("${missing[@]/nodejs}")
command -v python3 >/dev/null 2>&1 && missing=("${missing[@]/python3}")
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${missing[*]} (not root, so not installing them myself)" >&2
  fi
fi

# uv: use the one on PATH, else install it with pip into .cache/uv (no system pip needed).
UV=${UV:-uv}
if ! command -v "$UV" >/dev/null 2>&1; then
  echo "bootstrap: installing uv into .cache/uv"
  python3 -m venv .cache/uv
  .cache/uv/bin/pip install --quiet uv
fi
