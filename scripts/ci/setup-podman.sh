#!/usr/bin/env bash
# Make this machine able to build and run images with no Docker engine (DESIGN.md, "Image builds"):
# podman, buildah, runc and debootstrap from the machine's own distribution; a containers.conf selecting runc with
# ulimits it can set; and the local base image the image tests build FROM where no registry is reachable, made by
# debootstrap from the archive this host's apt already uses:
#   Debian:  bookworm (Python 3.11), as the serving image's base.
#   Ubuntu (GitHub's ubuntu-latest runners, which carry no Debian archive): the runner's own release (its
#            VERSION_CODENAME), from its Ubuntu archive, main and universe.
# The image keeps the name the tests look for (CONVEYOR_BASE_IMAGE). Idempotent: when everything is in place it
# returns in about a second. --dry-run prints what it would do and changes nothing.
# CONVEYOR_OS_RELEASE names another os-release file (the tests use a fake one).
set -euo pipefail

BASE_IMAGE="${CONVEYOR_BASE_IMAGE:-localhost/debian-bookworm:base}"
OS_RELEASE="${CONVEYOR_OS_RELEASE:-/etc/os-release}"
DRY_RUN=false
case "${1:-}" in
  --dry-run) DRY_RUN=true ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
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

# DISTRIBUTION (debian, ubuntu), SUITE (the release debootstrap makes) and COMPONENTS, from os-release.
detect_distribution() {
  if [ ! -r "$OS_RELEASE" ]; then
    echo "error: $OS_RELEASE is missing; cannot tell which distribution this is" >&2
    exit 1
  fi
  local id="" codename=""
  # shellcheck source=/dev/null # os-release is shell assignments, read in a subshell
  read -r id codename <<<"$(. "$OS_RELEASE" && echo "${ID:-unknown} ${VERSION_CODENAME:-${UBUNTU_CODENAME:-}}")"
  case "$id" in
    debian) DISTRIBUTION=debian SUITE=bookworm COMPONENTS=main ;;
    ubuntu) DISTRIBUTION=ubuntu SUITE="$codename" COMPONENTS=main,universe ;;
    *)
      echo "error: $OS_RELEASE says $id, neither Debian nor Ubuntu; install podman, buildah, runc and" \
        "debootstrap by hand and import a base image as $BASE_IMAGE" >&2
      exit 1
      ;;
  esac
  if [ -z "$SUITE" ]; then
    echo "error: $OS_RELEASE names no VERSION_CODENAME; cannot tell which $id release to debootstrap" >&2
    exit 1
  fi
}

make_base_image() {
  as_root podman image exists "$BASE_IMAGE" && return
  echo "building $BASE_IMAGE with debootstrap ($DISTRIBUTION $SUITE)"
  [ -n "$(apt_site "$SUITE")" ] || as_root apt-get update -qq
  local mirror="${BASE_MIRROR:-${DEBIAN_MIRROR:-$(apt_site "$SUITE")}}"
  local security="${DEBIAN_SECURITY_MIRROR:-$(apt_site "$SUITE-security")}"
  if [ -z "$mirror" ]; then
    echo "no $DISTRIBUTION $SUITE archive in this host's apt sources; set BASE_MIRROR to one" >&2
    exit 1
  fi
  ROOTFS="$(mktemp -d)"
  as_root debootstrap --variant=minbase --components="$COMPONENTS" \
    --include=python3,python3-venv,python3-pip,ca-certificates "$SUITE" "$ROOTFS" "$mirror" >/dev/null
  {
    printf '%s\n' "deb $mirror $SUITE ${COMPONENTS//,/ }" "deb $mirror $SUITE-updates ${COMPONENTS//,/ }"
    if [ -n "$security" ]; then printf '%s\n' "deb $security $SUITE-security ${COMPONENTS//,/ }"; fi
  } | as_root tee "$ROOTFS/etc/apt/sources.list" >/dev/null
  as_root rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log
  as_root tar -C "$ROOTFS" -c . | as_root podman import --quiet --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
}

ROOTFS=""
trap '[ -z "$ROOTFS" ] || as_root rm -rf "$ROOTFS"' EXIT

detect_distribution
if [ "$DRY_RUN" = true ]; then
  mirror="${BASE_MIRROR:-$(apt_site "$SUITE")}"
  [ -n "$mirror" ] || mirror="none: no $DISTRIBUTION $SUITE archive in apt sources, set BASE_MIRROR"
  printf '%s\n' "distribution: $DISTRIBUTION $SUITE" "packages: ${PACKAGES[*]}" "config: $CONF" \
    "base image: $BASE_IMAGE from $DISTRIBUTION $SUITE ($COMPONENTS) at $mirror"
  exit 0
fi
install_packages
write_containers_conf
make_base_image
