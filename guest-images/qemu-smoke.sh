#!/bin/bash
# qemu-smoke.sh - run the test guest's boot paths and tests under QEMU/KVM.
#
# usage: qemu-smoke.sh [BUILD_DIR]    (default ../build relative to here)
# Needs qemu-system-x86_64 and /dev/kvm; prints "N passed, N failed" and
# exits non-zero on any failure. Linux 64-bit boots go through the
# pvh2linux shim (QEMU has no 64-bit Linux entry of its own).
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}/guest
elf=$build/testguest.elf bz=$build/testguest.bzImage shim=$build/pvh2linux.elf
pass=0 fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v qemu-system-x86_64 >/dev/null || [ ! -w /dev/kvm ]; then
    echo "qemu-smoke: qemu-system-x86_64 or /dev/kvm missing, skipping"
    exit 0
fi

# 5000-byte initrd and its FNV-1a; a bzImage+initrd module for the shim.
head -c 5000 /dev/urandom >"$tmp/initrd"
sum=$(python3 -c 'import sys
h=0x811c9dc5
for b in open(sys.argv[1],"rb").read(): h=((h^b)*0x01000193)&0xffffffff
print(hex(h))' "$tmp/initrd")
cat "$bz" "$tmp/initrd" >"$tmp/bz+initrd"

# run NAME EXPECTED_STATUS GREP_PATTERN MACHINE SMP INPUT -- qemu args...
# QEMU's isa-debug-exit turns guest status v into exit status (v << 1) | 1.
run() {
    local name=$1 want=$2 pat=$3 mach=$4 smp=$5 input=$6
    shift 7
    local m="microvm,x-option-roms=off,rtc=off"
    [ "$mach" = q35 ] && m=q35
    printf '%b' "$input" | timeout 60 qemu-system-x86_64 -M "$m" -accel kvm \
        -cpu host -m 256M -smp "$smp" -nodefaults -no-user-config \
        -display none -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=4 "$@" \
        >"$tmp/out" 2>"$tmp/err"
    local got=$?
    # An empty pattern means the guest must print nothing (test=exit).
    local seen=0
    if [ -z "$pat" ]; then
        grep -q "wisp-guest:" "$tmp/out" || seen=1
    else
        grep -q -- "$pat" "$tmp/out" && seen=1
    fi
    if [ "$got" = "$want" ] && [ "$seen" = 1 ]; then
        pass=$((pass + 1)); echo "ok   $name (status $got)"
    else
        fail=$((fail + 1)); echo "FAIL $name (status $got, want $want, /$pat/)"
        sed 's/^/     | /' "$tmp/out" "$tmp/err" | tail -20
    fi
}

for n in 1 2 4; do
    run "pvh report smp$n" 161 "cpus=$n online" micro $n "" -- -kernel "$elf" \
        -initrd "$tmp/initrd" \
        -append "test=report cpus=$n mem=256 initrd_size=5000 initrd_sum=$sum ioapic_strict=0"
done
run "linux64 report smp2" 161 "boot=linux64" micro 2 "" -- -kernel "$shim" \
    -initrd "$tmp/bz+initrd" \
    -append "test=report cpus=2 mem=256 initrd_size=5000 initrd_sum=$sum ioapic_strict=0"
run "linux64 no mptable" 161 "mptable none" micro 2 "" -- -kernel "$shim" \
    -initrd "$bz" -append "test=report pvh2linux.nomp=1"
run "pvh report wrong cpus" 163 "check cpus FAIL" micro 1 "" -- \
    -kernel "$elf" -append "test=report cpus=3 ioapic_strict=0"
run "pvh report bad initrd_sum" 163 "check initrd_sum FAIL" micro 1 "" -- \
    -kernel "$elf" -initrd "$tmp/initrd" -append "test=report initrd_sum=0x1 ioapic_strict=0"
run "pvh exit code=7" 15 "" micro 1 "" -- -kernel "$elf" -append "test=exit code=7"
run "linux64 exit code=7" 15 "" micro 1 "" -- -kernel "$shim" -initrd "$bz" \
    -append "test=exit code=7 virtio_mmio.device=4K@0xfeb00000:12"
run "pvh echo" 161 "echo HELLO, WORLD 42" micro 1 "hello, World 42\n" -- \
    -kernel "$elf" -append "test=echo"
run "linux64 echo" 161 "echo HELLO" micro 1 "hello\n" -- -kernel "$shim" \
    -initrd "$bz" -append "test=echo"
run "pvh serial-irq" 161 "echo IRQ LINE" micro 2 "irq line\n" -- \
    -kernel "$elf" -append "test=serial-irq"
run "linux64 serial-irq" 161 "thre_irqs=1" micro 1 "x\n" -- -kernel "$shim" \
    -initrd "$bz" -append "test=serial-irq"
run "pvh badio" 161 "badio survived" micro 1 "" -- -kernel "$elf" -append "test=badio"
run "pvh triple" 0 "triple:" micro 1 "" -- -no-reboot -kernel "$elf" -append "test=triple"
# microvm has no i8042, so the 0x64 reset is tested on q35 (SeaBIOS + PVH).
run "q35 reset" 0 "reset:" q35 1 "" -- -no-reboot -kernel "$elf" -append "test=reset"

if "$build/mkbzimage" --verify "$bz" >/dev/null; then
    pass=$((pass + 1)); echo "ok   mkbzimage --verify"
else
    fail=$((fail + 1)); echo "FAIL mkbzimage --verify"
fi
if ! "$build/mkbzimage" "$tmp/initrd" "$tmp/x" 2>/dev/null && [ ! -e "$tmp/x" ]; then
    pass=$((pass + 1)); echo "ok   mkbzimage rejects a non-ELF"
else
    fail=$((fail + 1)); echo "FAIL mkbzimage accepted a non-ELF"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
