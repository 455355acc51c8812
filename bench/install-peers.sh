#!/usr/bin/env bash
# Installs the comparison peers for `npm run bench` from Debian's packages:
# nginx (backends and a proxy), HAProxy, wrk and h2load (nghttp2-client, for bench/http2.ts). Run it explicitly, as root;
# the bench itself never installs anything and skips whatever is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-peers.sh: run as root (apt-get install)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# nginx-light is enough (no extra modules); fall back to nginx where it is gone.
if ! apt-get install -y --no-install-recommends nginx-light haproxy wrk nghttp2-client; then
  apt-get install -y --no-install-recommends nginx haproxy wrk nghttp2-client
fi

# The L4 bench (bench/l4-tcp.ts) compares with nginx's stream module, a separate package.
apt-get install -y --no-install-recommends libnginx-mod-stream || true

# Debian's packages start system services where an init system runs; the bench
# runs its own instances on its own ports, so stop any that were started.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  elif command -v service >/dev/null 2>&1; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done

for bin in nginx haproxy wrk h2load; do
  printf '%-8s %s\n' "$bin" "$(command -v "$bin" || echo missing)"
done
