#!/usr/bin/env bash
# `images.sh base`: assemble the local Python base (debootstrap) for machines that cannot
# pull the official one. `images.sh build`: build the three service images, then print each
# size against the budget. docker when its engine answers, else podman (flags for this
# machine's podman 4.3 + runc as root: see README.md ("Deploy")).
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=(api auth users)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
OFFICIAL_BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile)
LOCAL_ROOTFS=localhost/debian:bookworm-minbase
LOCAL_BASE=localhost/bulwark-python:3.11-bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUDGET_MB=${IMAGE_BUDGET_MB:-375}  # per image; README.md ("Deploy") says why this number
CABUNDLE=${CABUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if docker info >/dev/null 2>&1; then
  engine=(docker)
  run_flags=()
  export DOCKER_BUILDKIT=1
else
  command -v podman >/dev/null || { echo "images: neither a docker engine nor podman (apt-get install podman runc)"; exit 1; }
  engine=(podman --cgroup-manager cgroupfs --runtime runc --storage-driver overlay)
  run_flags=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
fi

have_image() { "${engine[@]}" image exists "$1" 2>/dev/null || "${engine[@]}" image inspect "$1" >/dev/null 2>&1; }

base() {
  command -v debootstrap >/dev/null || { echo "base-image: needs debootstrap (apt-get install debootstrap)"; exit 1; }
  local root
  root=$(mktemp -d)
  BASE_ROOT=$root
  trap 'rm -rf "$BASE_ROOT"' EXIT
  echo "base-image: debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
  debootstrap --variant=minbase bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
  tar -C "$root" -c . | "${engine[@]}" import - "$LOCAL_ROOTFS" >/dev/null
  "${engine[@]}" build "${run_flags[@]}" -q -f deploy/images/base.Dockerfile \
    --build-arg ROOTFS_IMAGE="$LOCAL_ROOTFS" -t "$LOCAL_BASE" deploy/images >/dev/null
  echo "base-image: $LOCAL_BASE ($(size_mb "$LOCAL_BASE") MB)"
}

size_mb() { "${engine[@]}" image inspect --format '{{.Size}}' "$1" | awk '{printf "%d", $1/1000000}'; }

pick_base() {
  if [ -n "${BASE_IMAGE:-}" ]; then echo "$BASE_IMAGE"; return; fi
  if have_image "$OFFICIAL_BASE" || timeout 60 "${engine[@]}" pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
    echo "$OFFICIAL_BASE"; return
  fi
  have_image "$LOCAL_BASE" || base >&2
  echo "$LOCAL_BASE"
}

build() {
  local base_image revision created over=0
  base_image=$(pick_base)
  revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  created=$(git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)
  echo "images: base $base_image"
  for svc in "${SERVICES[@]}"; do
    local start=$SECONDS
    # The labels are also given as flags: buildah's cache ignores ARGs used only by LABEL.
    "${engine[@]}" build "${run_flags[@]}" -q -f Dockerfile \
      --secret "id=cabundle,src=$CABUNDLE" \
      --build-arg BASE_IMAGE="$base_image" --build-arg SERVICE="$svc" \
      --build-arg VERSION="$VERSION" --build-arg REVISION="$revision" \
      --build-arg CREATED="$created" \
      --label "org.opencontainers.image.revision=$revision" \
      --label "org.opencontainers.image.created=$created" \
      -t "localhost/bulwark-$svc:$VERSION" . >/dev/null
    echo "images: localhost/bulwark-$svc:$VERSION built in $((SECONDS - start))s"
  done
  printf '%-32s %8s %8s\n' image "size MB" "budget"
  for svc in "${SERVICES[@]}"; do
    local mb
    mb=$(size_mb "localhost/bulwark-$svc:$VERSION")
    printf '%-32s %8s %8s\n' "localhost/bulwark-$svc:$VERSION" "$mb" "$BUDGET_MB"
    [ "$mb" -le "$BUDGET_MB" ] || over=1
  done
  [ "$over" = 0 ] || { echo "images: over the size budget of ${BUDGET_MB} MB"; exit 1; }
  smoke
}

# Each service on a read-only root filesystem (only /tmp writable), no capabilities, in dev
# mode without Vault (no datastores needed to listen): it must start, then exit 0 on SIGTERM
# well within the chart's 30 s grace period.
smoke() {
  local svc
  for svc in "${SERVICES[@]}"; do smoke_one "$svc"; done
}

smoke_one() {
  local svc=$1 start code
  SMOKE_NAME="bulwark-smoke-$svc-$$"
  trap '"${engine[@]}" rm -f "$SMOKE_NAME" >/dev/null 2>&1' EXIT
  "${engine[@]}" run -d --name "$SMOKE_NAME" "${run_flags[@]}" --read-only --tmpfs /tmp \
    --cap-drop ALL --security-opt no-new-privileges -e BULWARK_ENV=dev \
    -e "${svc^^}_HOST=0.0.0.0" "localhost/bulwark-$svc:$VERSION" >/dev/null
  local deadline=$((SECONDS + 30))
  until "${engine[@]}" logs "$SMOKE_NAME" 2>&1 | grep -q '"listening"'; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "images: $svc did not start"
      "${engine[@]}" logs "$SMOKE_NAME"
      exit 1
    fi
    sleep 0.5
  done
  start=$(date +%s%N)
  "${engine[@]}" stop -t 30 "$SMOKE_NAME" >/dev/null
  code=$("${engine[@]}" inspect "$SMOKE_NAME" --format '{{.State.ExitCode}}')
  echo "images: $svc (read-only root, user $("${engine[@]}" inspect "$SMOKE_NAME" --format '{{.Config.User}}')) exited $code on SIGTERM after $(( ($(date +%s%N) - start) / 1000000 )) ms"
  "${engine[@]}" rm -f "$SMOKE_NAME" >/dev/null
  [ "$code" = 0 ] || exit 1
}

case "${1:-build}" in
  base) base ;;
  build) build ;;
  smoke) smoke ;;
  *) echo "usage: $0 [base|build|smoke]"; exit 2 ;;
esac
