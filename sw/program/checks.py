"""Static checks of a command against the memory map: what the sequencer refuses.

:func:`footprint` lists the activation words a command reads and writes; :func:`check_command`
raises :class:`ProgramError` (naming the command, the field or buffer and the problem) for a
zero dimension, a bias outside the format's register range, an operand beyond its memory, a
destination that overlaps a source, or a descriptor or aux address out of range. The golden
executor checks every command before it executes it; the accelerator sets an error code for
the same conditions.
"""

from hw.isa import Command, Op
from hw.layouts import AFFormat
from hw.memmap import MemoryMap

__all__ = ["ProgramError", "footprint", "check_command"]

# Operands of each opcode: field prefix -> (rows, cols) in tiles, each a command field, a
# descriptor field ("@name") or a constant.
_DIMS = {
    Op.EMBED: {"dst": ("rows", "cols")},
    Op.MATMUL: {"x": ("rows", "@k"), "dst": ("rows", "@cols")},
    Op.MATMUL_ACT: {"x": ("rows", "k"), "w": ("k", "cols"), "dst": ("rows", "cols")},
    Op.SOFTMAX: {"x": ("rows", "cols"), "dst": ("rows", "cols")},
    Op.LAYERNORM: {"x": ("rows", "cols"), "dst": ("rows", "cols")},
    Op.ADD: {"a": ("rows", "cols"), "b": ("rows", "cols"), "dst": ("rows", "cols")},
    Op.ENTROPY: {"x": (1, 1)},
}


class ProgramError(ValueError):
    """A command the accelerator refuses (it would set an error code and stop)."""


def _dim(cmd, spec, desc):
    if isinstance(spec, int):
        return spec
    if spec.startswith("@"):
        return desc[spec[1:]]
    return cmd.fields[spec]


def footprint(cmd: Command, desc=None):
    """``{operand: set of activation words}`` that each operand of ``cmd`` touches (``dst`` is
    the destination); ``desc`` (the decoded matrix descriptor, K and cols in tiles) is needed
    for MATMUL."""
    out = {}
    for name, (r, c) in _DIMS.get(cmd.op, {}).items():
        rows, cols = _dim(cmd, r, desc), _dim(cmd, c, desc)
        if name == "dst" and cmd.fields.get("transpose"):
            rows, cols = cols, rows
        base = cmd.fields[f"{name}_base"]
        stride = cmd.fields.get(f"{name}_stride", 1)
        out[name] = {base + rt * stride + ct for rt in range(rows) for ct in range(cols)}
    return out


def check_command(index, cmd: Command, memmap: MemoryMap, fmt: AFFormat, desc=None):
    """Raise :class:`ProgramError` unless command ``index`` can run (see the module docstring).

    ``desc`` is the decoded matrix descriptor of a MATMUL (``None`` if out of range)."""
    where = f"command {index} ({cmd.op.name})"
    for f, v in cmd.fields.items():
        if f.startswith("bias_") and v > fmt.bias_max:
            raise ProgramError(f"{where}: {f} = {v} is outside the bias register range "
                               f"0..{fmt.bias_max}")
        if f in ("rows", "cols", "k") and v == 0:
            raise ProgramError(f"{where}: {f} must be at least one tile, not 0")
        if f.endswith("_addr") and v >= memmap.aux_words:
            raise ProgramError(f"{where}: {f} = {v} is beyond the aux memory "
                               f"({memmap.aux_words} words)")
    if "desc" in cmd.fields and cmd.desc >= memmap.desc_words:
        raise ProgramError(f"{where}: descriptor {cmd.desc} is beyond the descriptor memory "
                           f"({memmap.desc_words} entries)")
    if cmd.op is Op.MATMUL and desc is None:
        raise ProgramError(f"{where}: descriptor {cmd.desc} holds no matrix")
    if cmd.op is Op.ENTROPY and cmd.classes == 0:
        raise ProgramError(f"{where}: classes must be at least 1, not 0")
    if cmd.op is Op.SOFTMAX and cmd.keys > cmd.cols * memmap.n:
        raise ProgramError(f"{where}: keys = {cmd.keys} is more than the row's "
                           f"{cmd.cols * memmap.n} elements")
    if cmd.op is Op.EMBED and cmd.tokens > cmd.rows * memmap.n:
        raise ProgramError(f"{where}: tokens = {cmd.tokens} is more than the "
                           f"{cmd.rows * memmap.n} rows written")
    fp = footprint(cmd, desc)
    for name, words in fp.items():
        if words and max(words) >= memmap.act_words:
            raise ProgramError(f"{where}: operand {name} reaches act word {max(words)}, beyond "
                               f"the act memory ({memmap.act_words} words)")
    dst = fp.get("dst", set())
    for name, words in fp.items():
        if name != "dst" and dst & words:
            raise ProgramError(f"{where}: the destination overlaps source {name} (act words "
                               f"{min(dst & words)}..{max(dst & words)})")
