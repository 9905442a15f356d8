"""Implementation flows for the generated Verilog: FPGA synthesis and place-and-route, lint."""
