#!/usr/bin/env bash
# Set up podman, buildah and Debian's OCI registry on a CI or test machine (root, Debian).
# Not for a user's machine: there podman or docker work as installed.
# Every program is checked, not just podman: a machine with podman but without one of the others
# (catatonit, a Recommends that --no-install-recommends leaves out) must still get it.
set -euo pipefail
missing=0
for program in podman runc buildah skopeo debootstrap docker-registry newuidmap slirp4netns fuse-overlayfs; do
    command -v "$program" >/dev/null || missing=1
done
# catatonit: the pause process of `podman kube play` (Debian puts it in podman's helper folder)
[[ -x /usr/libexec/podman/catatonit ]] || command -v catatonit >/dev/null || missing=1
if [[ "$missing" == 1 ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman runc catatonit buildah skopeo debootstrap docker-registry uidmap slirp4netns fuse-overlayfs >/dev/null
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
