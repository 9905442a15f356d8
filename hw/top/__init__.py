"""The accelerator top ([C4], [H9]): memories, units and the command sequencer.

:mod:`~hw.top.errors` (error codes, plain Python), :mod:`~hw.top.decode` (command fields
generated from :data:`hw.isa.LAYOUTS`), :mod:`~hw.top.memories` (act, aux, desc, prog from
:class:`hw.memmap.MemoryMap`) and :mod:`~hw.top.top` (the component and the sequencer).
"""
