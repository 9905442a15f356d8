"""EdgeBERT accelerator gateware (Amaranth 0.5). One block per module; formats in hw.layouts."""
