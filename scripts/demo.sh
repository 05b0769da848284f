#!/usr/bin/env bash
# `make demo`: boot the bundled test guest with 2 vCPUs and check its report,
# on this host's /dev/kvm when a VM runs there (build/kvm-probe), and inside
# the nested testbed otherwise (tests/testbed/run), saying which.
#   scripts/demo.sh WISP GUEST_ELF KVM_PROBE
set -uo pipefail
wisp=$1 guest=$2 probe=$3
cd "$(dirname "$0")/.."

cmd=("$wisp" run --kernel "$guest" --vcpus 2 --memory 256M --debug-exit
     --cmdline "test=report cpus=2 mem=256")
verdict=$("$probe"); rc=$?
if [ $rc -le 1 ]; then
    echo "demo: KVM: this host's /dev/kvm (${verdict%%:*})"
    "${cmd[@]}"
    st=$?
else
    echo "demo: KVM: none here ($verdict); booting in the nested testbed"
    tests/testbed/run -- "${cmd[@]}"
    st=$?
fi
if [ $st -eq 80 ]; then
    echo "demo: guest reported PASS"
else
    echo "demo: exit status $st"
    exit 1
fi
