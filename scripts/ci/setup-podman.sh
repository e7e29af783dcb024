#!/usr/bin/env bash
# Make this machine able to build and run images with no Docker engine (DESIGN.md, "Image builds"):
# podman, buildah, runc and debootstrap from Debian; a containers.conf selecting runc with ulimits it can set;
# and localhost/debian-bookworm:base, a minimal Debian with Python 3.11 made by debootstrap, to build FROM
# where no registry is reachable. Idempotent: when everything is in place it returns in about a second.
set -euo pipefail

BASE_IMAGE="${CONVEYOR_BASE_IMAGE:-localhost/debian-bookworm:base}"
PACKAGES=(podman buildah runc debootstrap)
CONF=/etc/containers/containers.conf
MARKER="# written by conveyor scripts/ci/setup-podman.sh"

# The Debian archive this host's apt already uses for a suite; no mirror is named in this repository.
apt_site() {
  # shellcheck disable=SC2016 # $(SITE) and $(RELEASE) are apt's own format fields, not shell
  apt-get indextargets --format '$(SITE) $(RELEASE)' 2>/dev/null | awk -v suite="$1" '$2 == suite { print $1; exit }'
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_containers_conf() {
  # crun cannot set rlimits on some cgroup v1 hosts; runc with explicit ulimits works on all we have seen.
  local wanted
  wanted="$(printf '%s\n' "$MARKER" '[containers]' 'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]' \
    '' '[engine]' 'runtime = "runc"')"
  if [ -f "$CONF" ]; then
    [ "$(cat "$CONF")" = "$wanted" ] && return
    if ! grep -qF "$MARKER" "$CONF"; then
      echo "error: $CONF exists and was not written by this script; expected runtime = \"runc\" under [engine]" \
        "and default_ulimits under [containers]; merge them by hand." >&2
      exit 1
    fi
  fi
  echo "writing $CONF"
  as_root mkdir -p "$(dirname "$CONF")"
  printf '%s\n' "$wanted" | as_root tee "$CONF" >/dev/null
}

make_base_image() {
  as_root podman image exists "$BASE_IMAGE" && return
  echo "building $BASE_IMAGE with debootstrap"
  [ -n "$(apt_site bookworm)" ] || as_root apt-get update -qq
  local mirror="${DEBIAN_MIRROR:-$(apt_site bookworm)}" security="${DEBIAN_SECURITY_MIRROR:-$(apt_site bookworm-security)}"
  if [ -z "$mirror" ]; then
    echo "no Debian bookworm archive in this host's apt sources; set DEBIAN_MIRROR to one" >&2
    exit 1
  fi
  ROOTFS="$(mktemp -d)"
  as_root debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOTFS" "$mirror" >/dev/null
  {
    printf '%s\n' "deb $mirror bookworm main" "deb $mirror bookworm-updates main"
    if [ -n "$security" ]; then printf '%s\n' "deb $security bookworm-security main"; fi
  } | as_root tee "$ROOTFS/etc/apt/sources.list" >/dev/null
  as_root rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
  as_root tar -C "$ROOTFS" -c . | as_root podman import --quiet --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
}

ROOTFS=""
trap '[ -z "$ROOTFS" ] || as_root rm -rf "$ROOTFS"' EXIT

install_packages
write_containers_conf
make_base_image
