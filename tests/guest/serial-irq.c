/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * COM1 interrupts through IOAPIC GSI 4: a line sent from the THRE
 * interrupt, then 4 bytes received through the RX interrupt (the host
 * writes "ping" to the VM's stdin after "waiting for 4 bytes"), echoed
 * back as "pong:<bytes>", again from the THRE interrupt.
 */
#include "lib/guest.h"

const char test_name[] = "serial-irq";

#define SIRQ_VECTOR     0x34
#define SIRQ_RX_WANT    4

static const char *volatile sirq_tx;    /* next byte to send, NULL = idle */
static volatile unsigned sirq_thre_irqs;
static volatile unsigned sirq_rx_irqs;
static volatile unsigned sirq_irqs;
static volatile unsigned sirq_rx_len;
static char sirq_rx[16];
static uint8_t sirq_ier;

static void sirq_set_ier(uint8_t ier)
{
    sirq_ier = ier;
    io_out8(SERIAL_COM1 + SERIAL_IER, ier);
}

static void sirq_handler(TrapFrame *tf, void *opaque)
{
    (void)tf;
    (void)opaque;
    sirq_irqs++;
    for (unsigned guard = 0; guard < 64; guard++) {
        uint8_t iir = io_in8(SERIAL_COM1 + SERIAL_IIR);

        if (iir & SERIAL_IIR_NO_INT) {
            break;
        }
        switch (iir & SERIAL_IIR_ID) {
        case SERIAL_IIR_RDI:
        case SERIAL_IIR_TIMEOUT:
            sirq_rx_irqs++;
            while (io_in8(SERIAL_COM1 + SERIAL_LSR) & SERIAL_LSR_DR) {
                char c = io_in8(SERIAL_COM1 + SERIAL_RBR);
                if (sirq_rx_len < sizeof(sirq_rx)) {
                    sirq_rx[sirq_rx_len] = c;
                }
                sirq_rx_len++;
            }
            break;
        case SERIAL_IIR_THRI:
            /* Reading IIR cleared it; one byte per THRE interrupt. */
            sirq_thre_irqs++;
            if (sirq_tx && *sirq_tx) {
                io_out8(SERIAL_COM1 + SERIAL_THR, *sirq_tx);
                sirq_tx++;
            } else {
                sirq_tx = NULL;
                sirq_set_ier(sirq_ier & ~SERIAL_IER_THRI);
            }
            break;
        case SERIAL_IIR_RLSI:
            io_in8(SERIAL_COM1 + SERIAL_LSR);
            break;
        default:
            io_in8(SERIAL_COM1 + SERIAL_MSR);
            break;
        }
    }
    lapic_eoi();
}

/* Send a string from the THRE interrupt and wait until it has gone. */
static void sirq_send(const char *s)
{
    unsigned before = sirq_thre_irqs;

    cpu_cli();
    sirq_tx = s;
    /* THRE interrupts when it is enabled while the THR is empty. */
    sirq_set_ier(sirq_ier | SERIAL_IER_THRI);
    while (sirq_tx) {
        cpu_sti_hlt();
        cpu_cli();
    }
    if (sirq_thre_irqs - before < strlen(s)) {
        test_fail("%u THRE interrupts for %u bytes",
                  sirq_thre_irqs - before, (unsigned)strlen(s));
    }
}

int main(void)
{
    char line[64];

    lapic_enable();
    cpu_set_handler(SIRQ_VECTOR, sirq_handler, NULL);
    uint32_t gsi = ioapic_route_isa(SERIAL_COM1_IRQ, SIRQ_VECTOR, lapic_id());
    test_log("serial-irq: COM1 IRQ %u -> GSI %u -> vector 0x%x",
             SERIAL_COM1_IRQ, gsi, SIRQ_VECTOR);

    /* 8N1, interrupts gated through OUT2. FIFOs untouched: keeps early input. */
    io_out8(SERIAL_COM1 + SERIAL_LCR, 0x03);
    sirq_set_ier(0);
    io_out8(SERIAL_COM1 + SERIAL_MCR,
            SERIAL_MCR_DTR | SERIAL_MCR_RTS | SERIAL_MCR_OUT2);

    sirq_send(TEST_PREFIX "serial-irq: this line was sent by THRE interrupts\n");

    cpu_cli();
    sirq_set_ier(sirq_ier | SERIAL_IER_RDI);
    test_log("serial-irq: waiting for %u bytes", SIRQ_RX_WANT);
    while (sirq_rx_len < SIRQ_RX_WANT) {
        cpu_sti_hlt();
        cpu_cli();
    }
    sirq_set_ier(sirq_ier & ~SERIAL_IER_RDI);

    fmt_snprint(line, sizeof(line), "%spong:%.*s\n", TEST_PREFIX,
                SIRQ_RX_WANT, sirq_rx);
    sirq_send(line);

    sirq_set_ier(0);
    io_out8(SERIAL_COM1 + SERIAL_MCR, SERIAL_MCR_DTR | SERIAL_MCR_RTS);
    ioapic_mask(gsi);
    test_log("serial-irq: %u interrupts (%u THRE, %u RX), %u bytes received",
             sirq_irqs, sirq_thre_irqs, sirq_rx_irqs, sirq_rx_len);
    return 0;
}
