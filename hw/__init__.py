"""EdgeBERT accelerator gateware (Amaranth 0.5). One block per module (the matrix engine: the
package hw.matmul); what gateware and models share, in plain Python: hw.layouts, hw.sfu_tables,
hw.matmul.config, hw.checks. Never imports sw or sim."""
