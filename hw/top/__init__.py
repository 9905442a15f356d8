"""The accelerator top ([C4], [H9]): memories, units and the command sequencer.

The error codes are :class:`hw.regmap.ErrorCode`; :mod:`~hw.top.decode` (command fields
generated from :data:`hw.isa.LAYOUTS`), :mod:`~hw.top.memories` (act, aux, desc, prog from
:class:`hw.memmap.MemoryMap`) and :mod:`~hw.top.top` (the component and the sequencer).
"""
