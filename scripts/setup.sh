#!/usr/bin/env bash
# Install what wisp needs to build, test and benchmark on Debian 12.
# Idempotent: packages already present are skipped by apt.  Runs apt-get as
# root, through sudo when invoked as a normal user.
set -euo pipefail

PACKAGES=(
    build-essential pkg-config git    # compiler, make
    libjson-c-dev                     # JSON config files
    liburing-dev                      # asynchronous disk I/O for virtio-blk
    libseccomp-dev                    # per-thread seccomp filters
    libmicrohttpd-dev                 # the control API's HTTP server (--api-sock)
    libcriterion-dev                  # unit and integration tests
    clang llvm libclang-rt-14-dev     # sanitizer builds (and libFuzzer later)
    qemu-system-x86                   # `make bench`'s QEMU microvm; the nested testbed's L1;
                                      # qemu-storage-daemon (via qemu-system-common): vhost-user peer
    python3 time                      # benchmark driver, peak-RSS measurement
    iproute2                          # network namespaces for tests
    kmod cpio xz-utils zstd           # the nested testbed: depmod, initramfs images, modules
    acpica-tools                      # iasl: the ACPI table tests disassemble and recompile
    e2fsprogs                         # mkfs.ext4 and debugfs: stock-Linux guests' disk images
    device-tree-compiler libfdt1      # dtc, and libfdt for the aarch64 FDT unit tests (header from libfdt-dev:arm64)
    gcc-aarch64-linux-gnu             # make ARCH=aarch64 (docs/AARCH64.md)
    qemu-system-arm                   # the arm64 testbed's L1 (qemu-system-aarch64)
    librte-net-vhost23 librte-mempool-ring23  # dpdk-testpmd's net_vhost port and mempool (below)
    # The aarch64 build's libraries, through multiarch (added below).
    libc6-dev:arm64 libjson-c-dev:arm64 liburing-dev:arm64 libseccomp-dev:arm64
    libmicrohttpd-dev:arm64 libfdt-dev:arm64
)

# The arm64 libraries come from Debian's multiarch archive.
ADD_ARCH=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    ADD_ARCH=1
fi

# dpdk-testpmd, the vhost-user net peer of the tests, ships only in dpdk-dev,
# whose libdpdk-dev needs libfdt-dev:amd64, which would remove the aarch64
# build's libfdt-dev:arm64 (the package is not multi-arch).  So setup
# installs dpdk-dev's runtime dependencies and unpacks the one binary from
# the package into $TESTPMD_DIR (tests/testbed/linux/vhost_user_net_case.py).
TESTPMD_DIR=/usr/local/libexec/wisp
install_testpmd() {
    [ -x "$TESTPMD_DIR/dpdk-testpmd" ] && return 0
    local deps tmp
    deps=$(apt-cache show --no-all-versions dpdk-dev | sed -n 's/^Depends: //p' | tr ',' '\n' |
        sed 's/(.*//; s/|.*//; s/ //g' | grep -v -E '^(libdpdk-dev|python3)$' | grep .)
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $deps
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt-get download runs as _apt
    (cd "$tmp" && apt-get download -qq dpdk-dev) && dpkg-deb -x "$tmp"/dpdk-dev_*.deb "$tmp/x"
    $SUDO install -D -m 0755 "$tmp/x/usr/bin/dpdk-testpmd" "$TESTPMD_DIR/dpdk-testpmd"
    rm -rf "$tmp"
    echo "setup: dpdk-testpmd unpacked into $TESTPMD_DIR"
}

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all packages present"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    install_testpmd
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
if [ "$ADD_ARCH" -eq 1 ]; then
    echo "setup: adding the arm64 architecture (multiarch)"
    $SUDO dpkg --add-architecture arm64
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_testpmd

if [ ! -w /dev/kvm ]; then
    echo "setup: note: /dev/kvm is not writable by $(id -un); wisp needs it (run as root or join the kvm group)" >&2
fi
