"""cocotb testbenches and the runner helpers that build generated Verilog for them."""
