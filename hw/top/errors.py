"""Error codes of the accelerator top ([H9]): why the sequencer stopped (plain Python).

The top sets ``error`` to one of these and ``error_pc`` to the command's index, then stops
(``done``); it never hangs. The CSR map of the AXI slave reports the same numbers.
"""

import enum

__all__ = ["TopError", "ERROR_BITS"]

ERROR_BITS = 4


class TopError(enum.IntEnum):
    """Error status of the sequencer (``error`` port)."""

    NONE = 0
    ILLEGAL_OPCODE = 1      # opcode beyond hw.isa.Op
    RESERVED_BITS = 2       # a bit above the opcode's last field is set
    BAD_FIELD = 3           # bias above the register range, zero dimension, aux address or
                            # descriptor beyond its memory, keys/tokens beyond the rows,
                            # DVFS bins or layer out of range
    OPERAND_RANGE = 4       # an operand reaches beyond the act memory
    OVERLAP = 5             # the destination's word range meets a source's
    EMPTY_DESC = 6          # MATMUL names a descriptor that holds no matrix
    UNIT_ERROR = 7          # the matrix engine or a special-function unit reported an error
    PC_OVERFLOW = 8         # the program ran off the end of the program memory
