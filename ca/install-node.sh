#!/usr/bin/env bash
# Prepares a node to pull images through a MitmCache proxy:
#   1. installs the proxy's root CA into the OS trust store (containerd, dockerd and CRI-O
#      verify registry TLS against it, so no per-runtime CA configuration is needed);
#   2. writes systemd drop-ins that give the runtimes HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
# Every file it writes is listed in etc/mitmcache/install-node.manifest under the root, so a
# re-run changes nothing and --uninstall removes exactly what was added. See ca/readme.md.
set -euo pipefail

readonly PROG=${0##*/}
readonly MARKER="# Managed by MitmCache ca/install-node.sh"
readonly MANIFEST=etc/mitmcache/install-node.manifest
readonly DROPIN_NAME=http-proxy.conf
readonly ALL_RUNTIMES=(containerd docker crio)
readonly DEFAULT_NO_PROXY=(localhost 127.0.0.0/8 ::1 .svc .cluster.local)

usage() {
  cat <<EOF
Usage: $PROG --proxy http://HOST:PORT [options]
       $PROG --uninstall [--root DIR] [--restart] [--dry-run]

Makes this node's container runtimes pull through a MitmCache proxy: trusts the proxy's
root CA (OS trust store) and writes systemd drop-ins with HTTPS_PROXY, HTTP_PROXY, NO_PROXY.
Safe to re-run: files whose content is already right are left alone.

Options:
  --proxy URL           The proxy, http://HOST:PORT (e.g. http://10.0.0.5:3128). Required
                        unless --uninstall. The CA is fetched from URL/ca.crt.
  --runtime LIST        containerd, docker, crio or all (default), comma-separated or repeated.
                        'all' means the runtimes with a systemd unit under the root; when the
                        root is not / and has none, all three.
  --no-proxy LIST       Extra NO_PROXY entries (hosts, .domains, CIDRs), comma-separated.
  --service-cidr CIDR   Kubernetes service network, added to NO_PROXY.
  --pod-cidr CIDR       Kubernetes pod network, added to NO_PROXY.
  --ca-file FILE        Use this PEM instead of downloading URL/ca.crt.
  --sha256 FINGERPRINT  Refuse the CA unless its SHA-256 fingerprint matches (hex, colons and
                        case optional). Strongly advised when downloading over plain HTTP.
  --os debian|rhel      Trust store layout, if etc/os-release does not tell.
  --restart             systemctl daemon-reload, then try-restart the selected runtimes
                        (only running ones are restarted; only when the root is /).
  --dry-run             Print what would change; change nothing.
  --uninstall           Remove every file this script wrote (see the manifest) and the
                        directories it created, then refresh the trust store.
  --root DIR            Operate on DIR instead of / (an image or chroot). The DESTDIR
                        environment variable does the same. Trust-store and systemctl commands
                        are printed, not run, when the root is not /.
  -h, --help            This text.

NO_PROXY is: ${DEFAULT_NO_PROXY[*]}, the service and pod CIDRs, the proxy host,
then --no-proxy entries.

Exit status: 0 done (or nothing to do), 1 failure, 2 bad usage.
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}
usage_error() {
  printf '%s: error: %s\nTry '\''%s --help'\''.\n' "$PROG" "$*" "$PROG" >&2
  exit 2
}

# ---------------------------------------------------------------- arguments
proxy="" ca_file="" sha256="" os_family="" root=${DESTDIR:-}
restart=0 dry_run=0 uninstall=0
runtime_args=() extra_no_proxy=() cidrs=()

split_list() { # split_list ARRAY_NAME VALUE: appends the comma-separated items of VALUE
  local -n into=$1
  local items item
  IFS=, read -ra items <<<"$2"
  for item in "${items[@]}"; do
    item=${item//[[:space:]]/}
    [[ -n $item ]] && into+=("$item")
  done
  return 0
}

while (($#)); do
  arg=$1
  if [[ $arg == --*=* ]]; then
    set -- "${arg%%=*}" "${arg#*=}" "${@:2}"
    arg=$1
  fi
  case $arg in
  --proxy | --runtime | --no-proxy | --service-cidr | --pod-cidr | --ca-file | --sha256 | --os | --root)
    (($# >= 2)) || usage_error "$arg needs a value"
    value=$2
    shift 2
    case $arg in
    --proxy) proxy=$value ;;
    --runtime) split_list runtime_args "$value" ;;
    --no-proxy) split_list extra_no_proxy "$value" ;;
    --service-cidr | --pod-cidr) split_list cidrs "$value" ;;
    --ca-file) ca_file=$value ;;
    --sha256) sha256=$value ;;
    --os) os_family=$value ;;
    --root) root=$value ;;
    esac
    ;;
  --restart) restart=1 && shift ;;
  --dry-run) dry_run=1 && shift ;;
  --uninstall) uninstall=1 && shift ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) usage_error "unknown argument '$arg'" ;;
  esac
done

root=${root:-/}
[[ -d $root ]] || usage_error "root '$root' is not a directory"
root=$(cd "$root" && pwd -P)
live=0
[[ $root == / ]] && live=1

path_of() { # absolute path of a root-relative path
  if ((live)); then printf '/%s' "$1"; else printf '%s/%s' "$root" "$1"; fi
}

if ((live && !dry_run && EUID != 0)); then
  die "must run as root to change /; use --dry-run to preview or --root DIR for an image"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---------------------------------------------------------------- manifest
manifest=() # "file REL" and "dir REL" lines, in the order they were created
if [[ -f $(path_of "$MANIFEST") ]]; then
  while IFS= read -r line; do
    [[ $line == file\ * || $line == dir\ * ]] && manifest+=("$line")
  done <"$(path_of "$MANIFEST")"
fi

manifest_add() {
  local entry="$1 $2" existing
  for existing in "${manifest[@]}"; do
    [[ $existing == "$entry" ]] && return 0
  done
  manifest+=("$entry")
}

# ensure_dir REL: creates missing directories one level at a time, recording each one.
ensure_dir() {
  local parts part prefix=""
  IFS=/ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    prefix=${prefix:+$prefix/}$part
    local dir
    dir=$(path_of "$prefix")
    if [[ ! -d $dir ]]; then
      [[ -e $dir ]] && die "$dir exists and is not a directory"
      mkdir -m 0755 "$dir"
      manifest_add dir "$prefix"
    fi
  done
}

record_file() { [[ $1 == "$MANIFEST" ]] || manifest_add file "$1"; }

# install_file REL MODE SOURCE: writes SOURCE to REL unless identical, and prints the outcome.
# Sets changed=1 when the file changed (or would), 0 when it was already right. It never
# returns non-zero, so it is not called in a condition, where bash would suspend set -e.
changed=0
install_file() {
  local rel=$1 mode=$2 source=$3 dest verb
  dest=$(path_of "$rel")
  changed=0
  if [[ -f $dest ]] && cmp -s "$source" "$dest" && [[ $(stat -c %a "$dest") == "${mode#0}" ]]; then
    say "unchanged: $dest"
    record_file "$rel"
    return 0
  fi
  changed=1
  verb=created
  [[ -e $dest ]] && verb=updated
  if ((dry_run)); then
    say "would be $verb: $dest"
    return 0
  fi
  ensure_dir "${rel%/*}" # records the directories it creates before the file that needs them
  local staged
  staged=$(mktemp "${dest%/*}/.mitmcache.XXXXXX")
  cat "$source" >"$staged"
  chmod "$mode" "$staged"
  mv -f "$staged" "$dest"
  record_file "$rel"
  say "$verb: $dest"
}

write_manifest() {
  ((dry_run)) && return 0
  local rel=${MANIFEST%/*} source=$tmp/manifest
  ensure_dir "$rel" # may add a dir entry, so it comes before the content is built
  {
    say "$MARKER: what '$PROG --uninstall' removes."
    say "# Paths are relative to the root. Directories are those the script created."
    printf '%s\n' "${manifest[@]}"
  } >"$source"
  install_file "$MANIFEST" 0644 "$source"
}

# ---------------------------------------------------------------- trust store
ca_rel_for() {
  case $1 in
  debian) say usr/local/share/ca-certificates/mitmcache.crt ;;
  rhel) say etc/pki/ca-trust/source/anchors/mitmcache.crt ;;
  esac
}
bundle_rel_for() {
  case $1 in
  debian) say etc/ssl/certs/ca-certificates.crt ;;
  rhel) say etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem ;;
  esac
}
family_of_ca_rel() {
  case $1 in
  */anchors/*) say rhel ;;
  *) say debian ;;
  esac
}

# run_or_show COMMAND...: runs it when the root is / (and not a dry run), else prints it.
run_or_show() {
  if ((dry_run)); then
    say "would run: $*"
  elif ((!live)); then
    say "not run (root is not /): $*"
  else
    command -v "$1" >/dev/null || die "$1 not found (install the ca-certificates package), then re-run"
    say "running: $*"
    "$@"
  fi
}

detect_os() {
  local file words word
  for file in etc/os-release usr/lib/os-release; do
    file=$(path_of "$file")
    [[ -r $file ]] || continue
    words=$(sed -n 's/^\(ID\|ID_LIKE\)=//p' "$file" | tr -d '"'\' | tr '[:upper:]' '[:lower:]')
    for word in $words; do
      case $word in
      debian | ubuntu) say debian && return 0 ;;
      rhel | fedora | centos | rocky | almalinux | amzn | ol) say rhel && return 0 ;;
      esac
    done
  done
  if [[ -d $(path_of etc/pki/ca-trust/source/anchors) ]]; then
    say rhel
  elif [[ -d $(path_of usr/local/share/ca-certificates) ]]; then
    say debian
  else
    return 1
  fi
}

# ---------------------------------------------------------------- uninstall
if ((uninstall)); then
  if [[ ! -f $(path_of "$MANIFEST") ]]; then
    say "nothing to uninstall: $(path_of "$MANIFEST") does not exist"
    exit 0
  fi
  trust_family="" restart_units=()
  for entry in "${manifest[@]}"; do
    [[ $entry == file\ * ]] || continue
    rel=${entry#file }
    path=$(path_of "$rel")
    if [[ $rel == *.service.d/* ]]; then
      unit=${rel%.d/*}
      restart_units+=("${unit##*/}")
    fi
    [[ $rel == */mitmcache.crt ]] && trust_family=$(family_of_ca_rel "$rel")
    if [[ ! -e $path ]]; then
      say "already gone: $path"
    elif [[ $rel == *.conf ]] && ! grep -qxF "$MARKER" "$path"; then
      warn "kept $path: it no longer carries the MitmCache marker, so someone else owns it now"
    elif ((dry_run)); then
      say "would remove: $path"
    else
      rm -f "$path"
      say "removed: $path"
    fi
  done
  if ((dry_run)); then
    say "would remove: $(path_of "$MANIFEST")"
  else
    rm -f "$(path_of "$MANIFEST")"
    say "removed: $(path_of "$MANIFEST")"
  fi
  # Deepest first, and only when empty: a directory someone has since used is kept.
  mapfile -t dirs < <(printf '%s\n' "${manifest[@]}" | sed -n 's/^dir //p' | awk -F/ '{ print NF "\t" $0 }' | sort -rn | cut -f2-)
  for rel in "${dirs[@]}"; do
    path=$(path_of "$rel")
    if ((dry_run)); then
      say "would remove if empty: $path/"
    elif [[ -d $path ]] && rmdir "$path" 2>/dev/null; then
      say "removed: $path/"
    elif [[ -d $path ]]; then
      say "kept (not empty): $path/"
    fi
  done
  case $trust_family in
  debian) run_or_show update-ca-certificates --fresh ;;
  rhel) run_or_show update-ca-trust extract ;;
  esac
  if ((restart && ${#restart_units[@]})); then
    run_or_show systemctl daemon-reload
    run_or_show systemctl try-restart "${restart_units[@]}"
  fi
  exit 0
fi

# ---------------------------------------------------------------- validate the install request
[[ -n $proxy ]] || usage_error "--proxy http://HOST:PORT is required"
[[ $proxy == http://* ]] || usage_error "--proxy must be http://HOST:PORT: clients talk plain HTTP to the proxy and tunnel TLS through it"
unsafe='[[:space:]"'\''\\]'
[[ $proxy =~ $unsafe ]] && usage_error "--proxy must not contain spaces, quotes or backslashes"
authority=${proxy#http://}
authority=${authority%/}
[[ $authority == */* ]] && usage_error "--proxy takes no path: http://HOST:PORT"
hostport=${authority##*@}
if [[ $hostport =~ ^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$ || $hostport =~ ^([A-Za-z0-9.-]+):([0-9]+)$ ]]; then
  proxy_host=${BASH_REMATCH[1]}
  proxy_port=${BASH_REMATCH[2]}
else
  usage_error "--proxy '$proxy': expected http://HOST:PORT, e.g. http://10.0.0.5:3128 or http://[fd00::5]:3128"
fi
((10#$proxy_port >= 1 && 10#$proxy_port <= 65535)) || usage_error "--proxy port $proxy_port is out of range"
proxy_url=http://$authority
ca_url=http://$hostport/ca.crt # never send proxy credentials for the public CA

want_sha256=""
if [[ -n $sha256 ]]; then
  want_sha256=$(tr -d ': ' <<<"$sha256" | tr '[:lower:]' '[:upper:]')
  [[ $want_sha256 =~ ^[0-9A-F]{64}$ ]] || usage_error "--sha256 must be 64 hex digits (colons optional), got '$sha256'"
fi

runtimes=()
[[ ${#runtime_args[@]} -eq 0 ]] && runtime_args=(all)
for rt in "${runtime_args[@]}"; do
  case $rt in
  containerd | docker | crio | all) ;;
  cri-o) rt=crio ;;
  *) usage_error "--runtime '$rt': expected containerd, docker, crio or all" ;;
  esac
  if [[ $rt == all ]]; then
    found=()
    for candidate in "${ALL_RUNTIMES[@]}"; do
      for dir in etc/systemd/system usr/lib/systemd/system lib/systemd/system; do
        if [[ -e $(path_of "$dir/$candidate.service") ]]; then
          found+=("$candidate")
          break
        fi
      done
    done
    if ((${#found[@]} == 0 && !live)); then
      found=("${ALL_RUNTIMES[@]}")
    elif ((${#found[@]} == 0)); then
      warn "no containerd, docker or crio unit found; installing the CA only (name runtimes with --runtime to write drop-ins anyway)"
    fi
    runtimes+=("${found[@]}")
  else
    runtimes+=("$rt")
  fi
done
mapfile -t runtimes < <(printf '%s\n' "${runtimes[@]}" | awk 'NF && !seen[$0]++')

for entry in "${cidrs[@]}" "${extra_no_proxy[@]}"; do
  [[ $entry =~ ^[A-Za-z0-9.:/_*-]+$ ]] || usage_error "NO_PROXY entry '$entry' has characters other than letters, digits and . : / _ * -"
done
no_proxy=$(printf '%s\n' "${DEFAULT_NO_PROXY[@]}" "${cidrs[@]}" "$proxy_host" "${extra_no_proxy[@]}" | awk 'NF && !seen[$0]++' | paste -sd, -)

if [[ -n $os_family ]]; then
  case $os_family in
  debian | ubuntu) os_family=debian ;;
  rhel | fedora | centos) os_family=rhel ;;
  *) usage_error "--os '$os_family': expected debian or rhel" ;;
  esac
else
  os_family=$(detect_os) || die "cannot tell the trust store layout from $(path_of etc/os-release); pass --os debian or --os rhel"
fi

command -v openssl >/dev/null || die "openssl is required to check the certificate (apt-get install openssl / dnf install openssl)"

# ---------------------------------------------------------------- get and check the CA
raw=$tmp/download
headers=$tmp/headers
: >"$headers"
if [[ -n $ca_file ]]; then
  [[ -r $ca_file ]] || die "--ca-file '$ca_file' is not readable"
  cp "$ca_file" "$raw"
  ca_source=$ca_file
else
  ca_source=$ca_url
  if command -v curl >/dev/null; then
    curl -fsS --noproxy '*' --connect-timeout 10 --max-time 60 -D "$headers" -o "$raw" "$ca_url" ||
      die "could not download $ca_url (is MitmCache running and reachable from this node?)"
  elif command -v wget >/dev/null; then
    wget -q -S --no-proxy -T 30 -t 2 -O "$raw" "$ca_url" 2>"$headers" ||
      die "could not download $ca_url (is MitmCache running and reachable from this node?)"
  else
    die "neither curl nor wget is installed: install one, or copy the CA over and pass --ca-file"
  fi
fi

grep -q -- '-----BEGIN CERTIFICATE-----' "$raw" || die "$ca_source is not a PEM certificate (no BEGIN CERTIFICATE line)"
grep -q -- 'PRIVATE KEY-----' "$raw" && die "$ca_source contains a private key; refusing to handle it. Pass the certificate only"
count=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$raw")
((count == 1)) || die "$ca_source holds $count certificates; expected exactly the MitmCache root CA"
ca_pem=$tmp/ca.pem
openssl x509 -in "$raw" -out "$ca_pem" 2>"$tmp/openssl.err" ||
  die "$ca_source is not a valid certificate: $(head -n1 "$tmp/openssl.err")"
text=$(openssl x509 -in "$ca_pem" -noout -text) # captured: grep -q in a pipe would trip pipefail
[[ $text == *CA:TRUE* ]] || die "$ca_source is not a CA certificate (no basicConstraints CA:TRUE)"
openssl x509 -in "$ca_pem" -noout -checkend 0 >/dev/null || warn "the certificate from $ca_source has expired"

colons() { sed 's/../&:/g; s/:$//' <<<"$1"; }
fingerprint=$(openssl x509 -in "$ca_pem" -noout -fingerprint -sha256)
fingerprint=${fingerprint#*=}
got_sha256=${fingerprint//:/}
if [[ -n $want_sha256 && $got_sha256 != "$want_sha256" ]]; then
  die "SHA-256 fingerprint mismatch for $ca_source: expected $(colons "$want_sha256"), got $fingerprint. Nothing was changed. Check --proxy and that nothing between here and the proxy rewrites traffic."
fi
header_sha256=$(sed -n 's/^ *[Xx]-[Cc]ertificate-[Ss][Hh][Aa]256: *//p' "$headers" | tail -n1 | tr -d ': \r' | tr '[:lower:]' '[:upper:]')
if [[ -n $header_sha256 && $header_sha256 != "$got_sha256" ]]; then
  die "the download from $ca_url is damaged: X-Certificate-SHA256 says $(colons "$header_sha256") but the certificate hashes to $fingerprint"
fi
if [[ -z $want_sha256 && -z $ca_file ]]; then
  warn "no --sha256 given: trusting a CA fetched over plain HTTP. Its fingerprint is $fingerprint; compare it with the X-Certificate-SHA256 header that 'curl -sI http://127.0.0.1:$proxy_port/ca.crt' shows on the proxy host, and pass --sha256 next time."
fi

say "root: $root ($os_family); proxy: $proxy_url; runtimes: ${runtimes[*]:-none}"
say "CA: $(openssl x509 -in "$ca_pem" -noout -subject) SHA256=$fingerprint"

# ---------------------------------------------------------------- plan: refuse before changing anything
dropin_rel() { say "etc/systemd/system/$1.service.d/$DROPIN_NAME"; }
for rt in "${runtimes[@]}"; do
  path=$(path_of "$(dropin_rel "$rt")")
  if [[ -e $path ]] && ! grep -qxF "$MARKER" "$path"; then
    die "$path exists and was not written by $PROG; merge the proxy settings by hand or move it away, then re-run. Nothing was changed."
  fi
  for other in "${path%/*}"/*.conf; do
    [[ -f $other && $other != "$path" ]] || continue
    grep -qi 'HTTPS\?_PROXY\|NO_PROXY' "$other" &&
      warn "$other also sets proxy variables; systemd applies drop-ins in name order, so the last one wins"
  done
done

# ---------------------------------------------------------------- apply
ca_rel=$(ca_rel_for "$os_family")
install_file "$ca_rel" 0644 "$ca_pem"
ca_changed=$changed

# A URL in a unit file: '%' starts a specifier, so it is doubled.
unit_proxy=${proxy_url//%/%%}
dropin_mode=0644
[[ $authority == *@* ]] && dropin_mode=0600 # the URL carries proxy credentials
changed_units=()
for rt in "${runtimes[@]}"; do
  conf=$tmp/$rt.conf
  case $rt in
  docker) daemon=dockerd ;;
  crio) daemon=CRI-O ;;
  *) daemon=$rt ;;
  esac
  cat >"$conf" <<EOF
$MARKER
# Re-run the script to change this file, or run it with --uninstall to remove it.
# Pulls go through MitmCache; its root CA is in the system trust store, which $daemon reads.
[Service]
Environment="HTTPS_PROXY=$unit_proxy"
Environment="HTTP_PROXY=$unit_proxy"
Environment="NO_PROXY=$no_proxy"
EOF
  install_file "$(dropin_rel "$rt")" "$dropin_mode" "$conf"
  if ((changed)); then
    changed_units+=("$rt.service")
    if ((dry_run)); then sed 's/^/    | /' "$conf"; fi
  fi
done

write_manifest

# The trust store is refreshed when the CA changed, or when it is missing from the bundle
# (a previous run that was interrupted before the refresh).
bundle=$(path_of "$(bundle_rel_for "$os_family")")
body=$(sed '/-----/d' "$ca_pem" | tr -d '\n')
flat_bundle=""
if ((live)) && [[ -f $bundle ]]; then flat_bundle=$(tr -d '\n' <"$bundle"); fi
if ((ca_changed)) || { ((live)) && [[ $flat_bundle != *"$body"* ]]; }; then
  case $os_family in
  debian) run_or_show update-ca-certificates ;;
  rhel) run_or_show update-ca-trust extract ;;
  esac
fi

if ((restart)); then
  restart_units=()
  for rt in "${runtimes[@]}"; do restart_units+=("$rt.service"); done
  if ((${#restart_units[@]})); then
    run_or_show systemctl daemon-reload
    run_or_show systemctl try-restart "${restart_units[@]}"
  fi
elif ((live && !dry_run && ${#runtimes[@]} && (${#changed_units[@]} || ca_changed))); then
  say "to apply: systemctl daemon-reload && systemctl restart ${runtimes[*]} (or re-run with --restart)"
fi
