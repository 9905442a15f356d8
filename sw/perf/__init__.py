"""Performance and energy models ([P]): analytic cycle counts per command, checked against RTL."""
