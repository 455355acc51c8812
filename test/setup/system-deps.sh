#!/usr/bin/env bash
# Installs the system programs the tests talk to (real peers, never mocks) from
# Debian's packages where they are missing. Runs before `npm test` (pretest).
# Each line: the binary a test needs, and the Debian package that provides it.
# Without root or apt, a missing program is reported; under CI=true that fails
# the run, because a test that cannot run there must fail rather than skip.
set -uo pipefail

NEEDED=(
  "curl curl"
  "openssl openssl"
  "redis-server redis-server"
  "nginx nginx"
  "haproxy haproxy"
  "nft nftables"
  "ip iproute2"
  "python3 python3"
  "chromium chromium"
  "dnsmasq dnsmasq-base"
  "pebble pebble"
  "pebble-challtestsrv pebble"
)

missing_pkgs=()
for entry in "${NEEDED[@]}"; do
  bin=${entry%% *}; pkg=${entry#* }
  command -v "$bin" >/dev/null 2>&1 || missing_pkgs+=("$pkg")
done
[ ${#missing_pkgs[@]} -eq 0 ] && exit 0

echo "system-deps: installing ${missing_pkgs[*]}" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" >/dev/null
fi

still=()
for entry in "${NEEDED[@]}"; do
  bin=${entry%% *}; pkg=${entry#* }
  command -v "$bin" >/dev/null 2>&1 || still+=("$bin (Debian package $pkg)")
done
if [ ${#still[@]} -gt 0 ]; then
  echo "system-deps: missing: ${still[*]}" >&2
  [ "${CI:-}" = "true" ] && exit 1
fi
exit 0
