"""The accelerator top ([C4], [H9]): memories, units and the command sequencer.

The error codes are :class:`hw.regmap.ErrorCode`. :mod:`~hw.top.top` (the ``Top`` component:
ports, units, host ports, registration), :mod:`~hw.top.memories` (act, aux, desc, prog from
:class:`hw.memmap.MemoryMap`), :mod:`~hw.top.decode` (command fields generated from
:data:`hw.isa.LAYOUTS`), :mod:`~hw.top.checks` (a command's refusals),
:mod:`~hw.top.context` (what the sequencer and its stages share), :mod:`~hw.top.sequencer`
(fetch, decode, check, dispatch), :mod:`~hw.top.status` (counters, the end of a command), the
stages :mod:`~hw.top.matmul_stage`, :mod:`~hw.top.rows_stage`, :mod:`~hw.top.embed_stage`,
:mod:`~hw.top.dvfs_stage`, and :mod:`~hw.top.system` (the accelerator behind its buses).
"""
