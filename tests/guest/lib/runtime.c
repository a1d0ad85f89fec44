/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * From the entry code to main(): boot CPU state (GDT, TSS, IDT, 8259s
 * masked), boot info, then the program. main() returning 0 passes the test; the program may also call
 * test_pass()/test_fail() itself.
 */
#include "boot.h"
#include "cpu.h"
#include "pic.h"
#include "test.h"
#include "user.h"

int main(void);

/*
 * Set on every boot. Loaders must zero p_memsz beyond p_filesz, and reload
 * the image on reset; finding it set means one of the two did not happen.
 */
static volatile uint32_t runtime_bss_canary;

void runtime_start(unsigned kind, uint64_t info);
void runtime_start(unsigned kind, uint64_t info)
{
    Cpu *bsp = cpu_get(0);

    cpu_idt_init();
    cpu_init(bsp, 0);
    user_init();
    /*
     * Firmware (SeaBIOS on QEMU q35/pc) leaves the 8259 on vectors 8-15
     * with the PIT running: the first STI, even user_run()'s, would take
     * a timer tick as a "double fault". Ten port writes; no-ops without
     * a PIC.
     */
    pic_disable();
    boot_init(kind, info);
    if (runtime_bss_canary) {
        test_fail(".bss not zero at entry (ELF p_memsz not zero-filled, "
                  "or image not reloaded on reset)");
    }
    runtime_bss_canary = 1;

    int rc = main();
    if (rc) {
        test_fail("main returned %d", rc);
    }
    test_pass();
}
