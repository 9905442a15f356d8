# EdgeBERT generated blocks: clock definition for ASIC (and SDC-reading FPGA) flows.
# Written by `edgebert synth --write-constraints constraints/` from sw/flows/constraints.py
# (SDC_PERIOD_NS): change the period there and regenerate, or edit `period` below.
#
# Amaranth names the clock and reset of the `sync` domain `clk` and `rst` (reset is synchronous,
# active high). Combinational blocks have no clock: they are timed against a virtual clock of
# the same period, from input to output, as if registered on both sides.

set period 10
set io_delay 2

set clk_port [get_ports -quiet clk]
if {[llength $clk_port] > 0} {
    create_clock -name clk -period $period $clk_port
} else {
    create_clock -name clk -period $period
}
# Every input but the clock (the synchronous reset `rst` included) and every output.
set non_clock_inputs [lsearch -inline -all -not -exact [all_inputs] $clk_port]
set_input_delay $io_delay -clock clk $non_clock_inputs
set_output_delay $io_delay -clock clk [all_outputs]
