#!/usr/bin/env bash
# Builds the mitmcache .deb: a self-contained single-file binary (no .NET on the node), the
# systemd units, an env example as /etc/mitmcache/mitmcache.env, ca/install-node.sh, and the
# maintainer scripts in packaging/debian. Needs the .NET SDK and dpkg-deb, nothing else.
# See docs/install.md.
set -euo pipefail

readonly PROG=${0##*/}
repo=$(cd "$(dirname "$0")/.." && pwd -P)

usage() {
  cat <<USAGE
Usage: $PROG [--arch amd64|arm64] [--version VERSION] [--out DIR] [--binary FILE]

  --arch     Debian architecture: amd64 (linux-x64, default) or arm64 (linux-arm64).
  --version  Package version (default: 0.1~git<commit time>.<commit>, so later commits sort higher).
  --out      Directory for the .deb (default: ./artifacts). The path is printed on the last line.
  --binary   Package this already published mitmcache instead of publishing one.
USAGE
}

arch=amd64 version="" out=$PWD/artifacts binary=""
while (($#)); do
  case $1 in
  --arch | --version | --out | --binary)
    (($# >= 2)) || { echo "$PROG: $1 needs a value" >&2; exit 2; }
    case $1 in
    --arch) arch=$2 ;; --version) version=$2 ;; --out) out=$2 ;; --binary) binary=$2 ;;
    esac
    shift 2 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "$PROG: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

case $arch in
amd64) rid=linux-x64 ;;
arm64) rid=linux-arm64 ;;
*) echo "$PROG: --arch must be amd64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
if [[ -z $version ]]; then
  version="0.1~git$(git -C "$repo" log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git -C "$repo" rev-parse --short=10 HEAD)"
fi
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || { echo "$PROG: '$version' is not a Debian version" >&2; exit 2; }
command -v dpkg-deb >/dev/null || { echo "$PROG: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ -z $binary ]]; then
  # Single file, self-contained, no compression of the bundle (it would cost start-up time on every
  # restart; the .deb is compressed anyway), no debug symbols. ReadyToRun: our own code is compiled ahead of
  # time too (the framework already is), so a restart and a fresh node's first pulls do not wait for the JIT:
  # start to /readyz 531-581 ms and 0.51-0.54 CPU-s against 844-908 ms and 0.81-0.84 CPU-s without (3 pairs,
  # load 4-6); the binary grows from 106 to 138 MB and the publish from about 30 s to 2 min.
  dotnet publish "$repo/src/MitmCache/MitmCache.csproj" -c Release -r "$rid" --self-contained \
    -p:PublishSingleFile=true -p:PublishReadyToRun=true -p:DebugType=none -p:InformationalVersion="$version" \
    -o "$work/publish" -v q -nologo >&2
  binary=$work/publish/mitmcache
fi
[[ -x $binary ]] || { echo "$PROG: $binary is not an executable" >&2; exit 1; }

root=$work/root
install -D -m 0755 "$binary" "$root/usr/bin/mitmcache"
for unit in mitmcache.service mitmcache.socket mitmcache-metrics.socket; do
  install -D -m 0644 "$repo/systemd/$unit" "$root/usr/lib/systemd/system/$unit"
done
# 0600: it may hold MITMCACHE_PROXY_AUTH and registry credentials.
install -D -m 0600 "$repo/systemd/mitmcache.env.example" "$root/etc/mitmcache/mitmcache.env"
install -D -m 0755 "$repo/ca/install-node.sh" "$root/usr/share/mitmcache/install-node.sh"
install -D -m 0644 "$repo/docs/install.md" "$root/usr/share/doc/mitmcache/install.md"
install -D -m 0644 "$repo/ca/readme.md" "$root/usr/share/doc/mitmcache/install-node.md"
install -D -m 0644 "$repo/LICENSE" "$root/usr/share/doc/mitmcache/copyright"

install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$repo/packaging/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/mitmcache/mitmcache.env >"$root/DEBIAN/conffiles"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$root" | cut -f1)/" \
  "$repo/packaging/debian/control" >"$root/DEBIAN/control"

mkdir -p "$out"
deb=$(cd "$out" && pwd -P)/mitmcache_${version}_${arch}.deb
# gzip: a few seconds for the ~80 MB binary, where xz takes about a minute on two cores.
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >&2
echo "$deb"
