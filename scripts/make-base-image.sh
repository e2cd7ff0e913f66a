#!/usr/bin/env bash
# Make a Debian bookworm base image with Python 3.11 from Debian's own packages, for machines
# that cannot pull python:3.11-slim from Docker Hub. Needs root, debootstrap and podman (or docker).
#   scripts/make-base-image.sh [IMAGE]      default IMAGE: localhost/conveyor-base:bookworm
# Then: conveyor build REF -t IMAGE2 --base-image localhost/conveyor-base:bookworm
set -euo pipefail
IMAGE=${1:-localhost/conveyor-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ENGINE=$(command -v podman || command -v docker || true)
if [[ -z "${ENGINE}" ]]; then echo "error: podman or docker is needed" >&2; exit 2; fi
if ! command -v debootstrap >/dev/null; then echo "error: debootstrap is needed (apt-get install debootstrap)" >&2; exit 2; fi
ROOTFS=$(mktemp -d /tmp/conveyor-rootfs.XXXXXX)
trap 'rm -rf "${ROOTFS}" "${ROOTFS}.tar"' EXIT
echo "debootstrap bookworm (minbase + python3, python3-venv) from ${MIRROR} ..."
debootstrap --variant=minbase --include=python3,python3-venv bookworm "${ROOTFS}" "${MIRROR}" >/dev/null
rm -rf "${ROOTFS}"/var/cache/apt/archives/*.deb "${ROOTFS}"/var/lib/apt/lists/*
tar -C "${ROOTFS}" -cf "${ROOTFS}.tar" .
"${ENGINE}" import --change 'CMD ["/bin/bash"]' "${ROOTFS}.tar" "${IMAGE}" >/dev/null
echo "${IMAGE}: $("${ENGINE}" run --rm "${IMAGE}" python3 --version)"
