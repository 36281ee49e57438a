#!/usr/bin/env bash
# Runs the MitmCache benchmark suite and prints one markdown table (see readme.md).
# Usage: tests/MitmCache.Benchmarks/run.sh [--reps N] [--only 1,5,...] [--quick] [--output FILE]
# Loopback only; about 20 minutes on 2 cores; needs root (containerd, private /etc/hosts) and the
# Debian packages below. Not part of `dotnet test`, and CI does not depend on its timings.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(nginx-light docker-registry skopeo containerd runc curl util-linux squid-openssl iproute2 iptables)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "Installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

free_gib=$(df -BG --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -dc '0-9')
if ((free_gib < 16)); then
  echo "Need about 16 GiB free in ${TMPDIR:-/tmp} (have ${free_gib} GiB)." >&2
  exit 2
fi

# Measurements use Release builds; the proxy runs as its own process from its build output.
dotnet build -c Release -nologo -v quiet src/MitmCache >&2
dotnet build -c Release -nologo -v quiet tests/MitmCache.Benchmarks >&2

exec dotnet tests/MitmCache.Benchmarks/bin/Release/net10.0/MitmCache.Benchmarks.dll \
  --proxy src/MitmCache/bin/Release/net10.0/mitmcache.dll "$@"
