#!/usr/bin/env bash
# Makes the image the Dockerfile starts from (its BASE_IMAGE) where Docker Hub, and so
# node:24-slim, is out of reach: Debian bookworm from this machine's Debian mirror
# (debootstrap --variant=minbase), imported into Docker, then base.Dockerfile adds the
# Node.js 24 binary that `npm ci` installed (the `node` devDependency), the npm this machine
# runs, a `node` user and this machine's CA bundle. Prints the image name on stdout.
#
# Runs as root (debootstrap) against the daemon in DOCKER_HOST. Cached, and safe to run twice
# at once (flock): the Debian tree as a tarball under /var/cache/dkim-relay-test/, keyed by
# suite and mirror, rebuilt after 30 days; the images stay in the daemon, the
# base tagged with a hash of everything it is made from. From nothing it takes about a minute.
set -euo pipefail
export DOCKER_BUILDKIT=0 # the classic builder: the same on Debian's docker.io and newer CLIs

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
CACHE=${DKIM_RELAY_TEST_CACHE:-/var/cache/dkim-relay-test}
SUITE=bookworm
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9

log() { echo "make-base-image: $*" >&2; }
sha() { sha256sum "$@" | cut -c1-64; }

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list), else Debian's CDN.
mirror=${DKIM_RELAY_TEST_DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -v '^\s*#' | grep -oE 'https?://[^ ]+' | grep -E '/debian/?$' | head -n1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}

node_bin=$(readlink -f "$ROOT/node_modules/node/bin/node")
[ -x "$node_bin" ] || { log "no Node.js binary at $ROOT/node_modules/node/bin/node: run npm ci first"; exit 1; }
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/bin/npm-cli.js" ] || { log "cannot find npm's package folder (from $(command -v npm))"; exit 1; }
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] || { log "no CA bundle at $ca"; exit 1; }

# 1. Debian minbase, as a tarball and as an imported image.
# (bump "recipe 1" when the debootstrap step below changes)
debian_key=$(printf '%s\n' "recipe 1" "$SUITE" "$mirror" | sha | cut -c1-16)
debian_tar="$CACHE/debian-$SUITE-minbase-$debian_key.tar"
debian_image="dkim-relay-test-debian:$debian_key"
if [ -f "$debian_tar" ] && [ -n "$(find "$debian_tar" -mtime +30)" ]; then
  log "$debian_tar is older than 30 days: making it again"
  rm -f "$debian_tar"
  docker rmi -f "$debian_image" >/dev/null 2>&1 || true
fi
if ! docker image inspect "$debian_image" >/dev/null 2>&1; then
  if [ ! -f "$debian_tar" ]; then
    rm -f "$CACHE"/debian-*.tar # older keys
    tree=$(mktemp -d "$CACHE/tree.XXXXXX")
    trap 'rm -rf "$tree" "$debian_tar.tmp"' EXIT
    log "debootstrap --variant=minbase $SUITE from $mirror"
    debootstrap --variant=minbase "$SUITE" "$tree" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
    rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
    tar -C "$tree" -cf "$debian_tar.tmp" .
    mv "$debian_tar.tmp" "$debian_tar"
    rm -rf "$tree"
    trap - EXIT
  fi
  log "importing $debian_tar as $debian_image"
  docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$debian_tar" "$debian_image" >/dev/null
fi

# 2. The Node.js layer (base.Dockerfile), tagged by what goes into it.
base_key=$(printf '%s\n' "$debian_key" "$(sha "$node_bin")" "$(sha "$npm_dir/package.json")" "$(sha "$ca")" "$(sha "$HERE/base.Dockerfile")" | sha | cut -c1-16)
base_image="dkim-relay-base:$base_key"
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  cp "$node_bin" "$ctx/node"
  cp -r "$npm_dir" "$ctx/npm"
  cp "$ca" "$ctx/ca-certificates.crt"
  cp "$HERE/base.Dockerfile" "$ctx/Dockerfile"
  log "building $base_image (Node.js $("$node_bin" --version), npm $("$node_bin" -p "require('$npm_dir/package.json').version"))"
  docker build -q --build-arg "DEBIAN_IMAGE=$debian_image" -t "$base_image" "$ctx" >/dev/null
  rm -rf "$ctx"
  trap - EXIT
  # older bases go; an image still used by a container stays (rmi refuses)
  for old in $(docker images dkim-relay-base --format '{{.Tag}}'); do
    [ "$old" = "$base_key" ] || docker rmi "dkim-relay-base:$old" >/dev/null 2>&1 || true
  done
fi
echo "$base_image"
