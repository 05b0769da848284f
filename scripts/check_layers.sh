#!/bin/sh
# Layering check (docs/ARCHITECTURE.md, "Layering"): lower layers never
# include the headers of the layers above them.  Run by `make check-layers`,
# which `make test` and `make test-unit` run first, so a wrong #include
# fails the build long before it turns into a call cycle.
#
# Each rule: folders whose .c/.h files are checked, then an extended regex
# matched against the path inside #include "...".  Exit status 1 on any hit.
set -u
cd "$(dirname "$0")/.." || exit 2

status=0
rule() {
    dirs=$1
    forbidden=$2
    why=$3
    # shellcheck disable=SC2086 # $dirs is a list of folders
    hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]+\"($forbidden)\"" \
        --include='*.c' --include='*.h' $dirs 2>/dev/null)
    if [ -n "$hits" ]; then
        printf 'check-layers: %s\n%s\n' "$why" "$hits" >&2
        status=1
    fi
}

# The core hands arch and devices what they need (vmm/services.h, bus and
# evloop handles, guest memory); they never see the VM lifecycle, the device
# manager, the jailer or the sandbox.
rule "arch devices migration" 'vmm/(vm|devmgr|vcpu)\.h|jailer/.*|sandbox/.*' \
    "arch/, devices/ and migration/ must not include vmm/vm.h, vmm/devmgr.h, vmm/vcpu.h, jailer/ or sandbox/"
# The services header is the boundary itself.
rule "vmm/services.h" 'vmm/(vm|devmgr)\.h' "vmm/services.h must not include vmm/vm.h or vmm/devmgr.h"
# Generic code reaches the architecture only through arch/arch.h.
rule "vmm devices migration jailer sandbox" 'arch/[^/]+/.*' \
    "only arch/arch.h may be included outside arch/ (the Makefile picks arch/\$(ARCH)/)"
# The sandbox and the jailer know nothing about devices or the VM.
rule "sandbox jailer" 'devices/.*|arch/.*|vmm/(vm|devmgr|vcpu)\.h' \
    "sandbox/ and jailer/ must not include devices/, arch/ or the VM core's vm/devmgr/vcpu headers"
rule "sandbox" 'jailer/.*' "sandbox/ must not include jailer/"
# The control API drives the VM through vmm/control.h only, never its internals.
rule "vmm/api" 'vmm/(vm|devmgr|vcpu)\.h|devices/.*|arch/.*|jailer/.*' \
    "vmm/api/ must not include vmm/vm.h, vmm/devmgr.h, vmm/vcpu.h, devices/, arch/ or jailer/ (use vmm/control.h)"
rule "vmm/control.h" 'vmm/(vm|devmgr|vcpu)\.h' "vmm/control.h must not include vmm/vm.h, vmm/devmgr.h or vmm/vcpu.h"

[ $status -eq 0 ] && echo "check-layers: ok"
exit $status
