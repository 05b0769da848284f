#!/usr/bin/env bash
# `make demo`: the main job.  Boots Debian's own kernel (the stock
# linux-image package, downloaded, never installed) as a wisp microVM with a
# busybox initramfs and an ext4 data disk on virtio-blk.  The guest finds the
# disk through wisp's ACPI tables, prints what it sees, writes a receipt to
# the disk and powers off; the host reads the receipt back from the image.
# Runs on this host's /dev/kvm when it is hardware virtualisation
# (build/kvm-probe), inside the nested testbed otherwise, and says which.
#   scripts/demo.sh WISP KVM_PROBE
set -uo pipefail
wisp=$1 probe=$2
cd "$(dirname "$0")/.."
repo=$(pwd)
out=$repo/build/demo
say() { echo "demo: $*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }

# 1. Debian's kernel and busybox (tests/testbed/prepare: apt-get download + dpkg-deb -x).
tests/testbed/prepare >/dev/null || die "could not fetch Debian's kernel packages (see above)"
tree=$repo/build/testbed/kernels/guest-6.1
kernel=$(ls "$tree"/boot/vmlinuz-* 2>/dev/null | head -n1)
[ -n "$kernel" ] || die "no kernel in $tree"

# 2. Initramfs: busybox, the demo /init and the modules it needs from the same
#    package.  mkinitramfs adds their dependencies, ext4's soft dependency on
#    crc32c included (crc32c_generic and crc32c-intel, as modprobe would).
mkdir -p "$out"
initrd=$out/initramfs.cpio.gz
if [ ! -e "$initrd" ] || [ guest-images/linux/demo-init -nt "$initrd" ] || [ scripts/demo.sh -nt "$initrd" ] ||
   [ tests/testbed/mkinitramfs -nt "$initrd" ]; then
    tests/testbed/mkinitramfs --busybox build/testbed/busybox --init guest-images/linux/demo-init \
        --kernel-tree "$tree" --modules "virtio_mmio virtio_blk ext4" --out "$initrd" ||
        die "cannot build the initramfs"
fi

# 3. A fresh ext4 data disk with a note from the host.
rm -rf "$out/disk-root" "$out/disk.img"
mkdir -p "$out/disk-root"
echo "hello from $(hostname) at $(date -u +%H:%M:%S) UTC" > "$out/disk-root/hello.txt"
truncate -s 32M "$out/disk.img"
mkfs.ext4 -q -F -L wisp-demo -d "$out/disk-root" "$out/disk.img" || die "mkfs.ext4 failed"

cmd=("$wisp" run --kernel "$kernel" --initrd "$initrd" --vcpus 2 --memory 256M
     --device "blk,path=$out/disk.img"
     --cmdline "console=ttyS0 loglevel=4 panic=-1")
say "kernel: $kernel ($(basename "$(readlink -f "$tree")"))"
say "command: ${cmd[*]#$repo/}"

verdict=$("$probe"); rc=$?
t0=$(date +%s%N)
if [ $rc -eq 0 ]; then
    say "KVM: this host's /dev/kvm (${verdict%%:*})"
    "${cmd[@]}" | tee "$out/console.log"
    st=${PIPESTATUS[0]}
else
    # Emulated KVM runs a stock kernel's boot far too slowly; none cannot run it.
    say "KVM: this host's is not hardware virtualisation ($verdict); booting in the nested testbed"
    tests/testbed/run --timeout 600 -- "${cmd[@]}" | tee "$out/console.log"
    st=${PIPESTATUS[0]}
fi
t1=$(date +%s%N)

[ "$st" -eq 0 ] || die "wisp exit status $st (0 means the guest powered off)"
grep -q "WISP-DEMO-SUCCESS" "$out/console.log" || die "the guest did not report success"
receipt=$(debugfs -R "cat /receipt.txt" "$out/disk.img" 2>/dev/null)
[ -n "$receipt" ] || die "no receipt.txt on the disk image after the guest powered off"
say "the disk image now holds receipt.txt: $receipt"
say "SUCCESS: stock Debian Linux booted under wisp, used its virtio disk and powered off (exit 0) in $(( (t1 - t0) / 1000000 )) ms"
