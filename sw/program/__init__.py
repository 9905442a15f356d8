"""The chip in software ([C1]-[C3], [S6], [P1]): memory layout, compiler, golden executor and
cycle model of the command program defined in :mod:`hw.isa`."""
