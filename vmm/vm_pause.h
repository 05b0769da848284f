/*
 * The VM core's pause protocol and control table, for vm.c (vm_pause.c).
 * vm_pause, vm_resume, vm_state and vm_park_vcpu themselves are declared
 * in vm.h, where their callers look.
 */
#ifndef VMM_VM_PAUSE_H
#define VMM_VM_PAUSE_H

struct vm;

/* Create the pause lock and condition (vm->pause_inited).  0 or -errno. */
int vm_pause_init(struct vm *vm);

/* Wake every thread waiting on the pause condition (a stop is under way). */
void vm_pause_broadcast(struct vm *vm);

/* Fill vm->ctl (vmm/control.h) with the VM's controller functions; vm->cfg is set. */
void vm_control_init(struct vm *vm);

#endif /* VMM_VM_PAUSE_H */
