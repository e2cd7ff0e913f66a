#!/usr/bin/env bash
# Set up podman, buildah and Debian's OCI registry on a CI or test machine (root, Debian).
# Not for a user's machine: there podman or docker work as installed.
set -euo pipefail
if ! command -v podman >/dev/null || ! command -v docker-registry >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman runc buildah skopeo debootstrap docker-registry uidmap slirp4netns fuse-overlayfs >/dev/null
fi
# crun fails on this kernel's hybrid cgroups; podman's default open-files limit exceeds the hard limit.
mkdir -p /etc/containers
cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF
