"""Golden DVFS controller lookup ([H6])."""

__all__ = ["dvfs_lookup"]


def dvfs_lookup(h, edges, vcodes, fcodes):
    """``(bin, vcode, fcode)`` for entropy ``h``: ``bin = #{i : h >= edges[i]}``.

    ``edges`` are the ``bins - 1`` lower bounds of bins 1 .. bins - 1 (integers in the entropy
    unit's format); ``vcodes`` and ``fcodes`` have one entry per bin.
    """
    if not len(vcodes) == len(fcodes) == len(edges) + 1:
        raise ValueError(f"need one vcode and fcode per bin ({len(edges) + 1} bins), not "
                         f"{len(vcodes)} and {len(fcodes)}")
    b = sum(int(h) >= int(e) for e in edges)
    return b, vcodes[b], fcodes[b]
