"""The bitmask sparse-weight format ([H2]): round trip, skipped vectors, every refusal."""

import dataclasses

import pytest
import torch

from sw.sparse import PackedWeights, pack_bitmask, unpack_bitmask


def _sparse_codes(rows, cols, n, seed, zero_vectors=0.3, density=0.6):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(1, 256, (rows, cols), generator=g)
    codes[codes == 0x80] = 0x81  # no negative zero
    codes[torch.rand(rows, cols, generator=g) > density] = 0
    # Whole 1×n vectors zeroed, as block pruning does.
    vec_zero = torch.rand(rows, cols // n, generator=g) < zero_vectors
    codes[vec_zero.repeat_interleave(n, dim=1)] = 0
    return codes.to(torch.uint8)


@pytest.mark.parametrize("rows,cols,n", [(64, 64, 16), (7, 12, 4), (1, 8, 8), (33, 16, 1)])
def test_round_trip(rows, cols, n):
    codes = _sparse_codes(rows, cols, n, seed=rows + cols)
    packed = pack_bitmask(codes, n)
    assert torch.equal(unpack_bitmask(packed), codes)
    assert packed.nnz == int((codes != 0).sum())
    assert packed.density == packed.nnz / (rows * cols)


def test_layout_is_block_major_then_k():
    # 2 rows, 4 columns, n = 2: vectors (k=0, cols 0-1), (k=1, cols 0-1), (k=0, cols 2-3)...
    codes = torch.tensor([[1, 0, 3, 4], [0, 0, 0, 5]], dtype=torch.uint8)
    p = pack_bitmask(codes, 2)
    assert p.masks.tolist() == [[0b01, 0b00], [0b11, 0b10]]
    assert p.values.tolist() == [1, 3, 4, 5]
    assert p.offsets.tolist() == [0, 1, 4]


def test_zero_vectors_are_counted_for_skipping():
    codes = _sparse_codes(40, 32, 8, seed=3)
    vectors = codes.reshape(40, 4, 8)
    expected = int((vectors == 0).all(dim=2).sum())
    packed = pack_bitmask(codes, 8)
    assert packed.zero_vectors == expected > 0
    assert pack_bitmask(torch.zeros(3, 8, dtype=torch.uint8), 4).zero_vectors == 6
    assert pack_bitmask(torch.ones(3, 8, dtype=torch.uint8), 4).zero_vectors == 0


def test_all_zero_matrix():
    p = pack_bitmask(torch.zeros(4, 8, dtype=torch.uint8), 4)
    assert p.nnz == 0 and p.offsets.tolist() == [0, 0, 0]
    assert torch.equal(unpack_bitmask(p), torch.zeros(4, 8, dtype=torch.uint8))


def test_refuses_negative_zero():
    codes = torch.tensor([[1, 0x80]], dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"weight codes contain negative zero; encode zero as "
                                         r"code 0"):
        pack_bitmask(codes, 2)


@pytest.mark.parametrize("shape,n,msg", [
    ((4, 6), 4, r"cols must be a positive multiple of n=4, not 6 \(K=4\)"),
    ((0, 8), 4, r"cols must be a positive multiple of n=4, not 8 \(K=0\)"),
])
def test_refuses_shape_not_a_multiple_of_n(shape, n, msg):
    with pytest.raises(ValueError, match=msg):
        pack_bitmask(torch.ones(shape, dtype=torch.uint8), n)


def test_refuses_bad_arguments():
    with pytest.raises(ValueError, match=r"weight codes must be a 2-D \(K × cols\) tensor, "
                                         r"not 1-D"):
        pack_bitmask(torch.ones(8, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match=r"vector width n must be a positive integer, not 0"):
        pack_bitmask(torch.ones(2, 8, dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match=r"vector width n must be a positive integer, not 2\.0"):
        pack_bitmask(torch.ones(2, 8, dtype=torch.uint8), 2.0)
    with pytest.raises(ValueError, match=r"vector width n must be a positive integer, not True"):
        pack_bitmask(torch.ones(2, 8, dtype=torch.uint8), True)
    with pytest.raises(TypeError, match=r"weight codes must be an integer tensor, not "
                                        r"torch.float32"):
        pack_bitmask(torch.ones(2, 8), 4)
    with pytest.raises(ValueError, match=r"weight codes must be in 0\.\.255 for 8-bit "
                                         r"AdaptivFloat, found 256"):
        pack_bitmask(torch.full((2, 8), 256), 4)


def _packed():
    return pack_bitmask(torch.tensor([[1, 0, 3, 4], [0, 0, 0, 5]], dtype=torch.uint8), 2)


@pytest.mark.parametrize("change,msg", [
    ({"values": torch.tensor([1, 3, 4], dtype=torch.uint8)},
     r"masks mark 4 non-zero codes but 3 are packed: mask and packed data disagree"),
    ({"masks": torch.tensor([[1, 0], [3, 3]])},
     r"masks mark 5 non-zero codes but 4 are packed: mask and packed data disagree"),
    ({"offsets": torch.tensor([0, 2, 4])}, r"column-block offsets disagree with the masks"),
    ({"values": torch.tensor([1, 0, 4, 5], dtype=torch.uint8)},
     r"packed data holds a zero code where its mask says non-zero"),
    ({"masks": torch.tensor([[1, 0], [4, 2]])}, r"masks must be 2-bit values"),
    ({"masks": torch.tensor([[1, 0, 0], [3, 2, 0]])}, r"masks must have shape \(2, 2\), not "
                                                      r"\(2, 3\)"),
    ({"cols": 5}, r"shape must be positive with cols a multiple of n=2, not 2×5"),
    ({"n": "2"}, r"vector width n must be a positive integer, not '2'"),
    ({"n": 0}, r"vector width n must be a positive integer, not 0"),
])
def test_packed_weights_refuse_disagreeing_parts(change, msg):
    p = _packed()
    fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
    with pytest.raises(ValueError, match=msg):
        PackedWeights(**{**fields, **change})
