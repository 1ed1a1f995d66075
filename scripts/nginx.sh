#!/usr/bin/env bash
# Make sure an nginx binary is installed for tests/integration/test_nginx.py.
# Installs Debian's nginx if it is missing. It starts nothing: each test runs its own
# nginx (tests/support/nginx.py) on a free loopback port with a config of its own.
# Note: on a machine with a service manager, Debian's package starts the system nginx
# on port 80 after installing it; the tests neither need nor touch that one.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

export PATH="$PATH:/usr/sbin:/sbin"

if ! command -v nginx >/dev/null 2>&1; then
  echo "nginx: installing Debian's nginx"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -q
  as_root apt-get install -y -q --no-install-recommends nginx
fi

# The tests need TLS termination and WebSocket proxying (any nginx since 1.3.13).
if ! nginx -V 2>&1 | grep -q -- '--with-http_ssl_module'; then
  echo "nginx: $(command -v nginx) was built without http_ssl_module" >&2
  exit 1
fi
echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //') at $(command -v nginx)"
