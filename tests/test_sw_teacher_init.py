import random

import pytest
import torch

from sw.student import Student, StudentConfig
from sw.teacher import Teacher
from sw.teacher_init import init_from_teacher, layer_states
from sw.tokenizer import WordPiece


@pytest.fixture(scope="module")
def teacher_and_batch(tiny_bert):
    teacher = Teacher(tiny_bert).eval()  # hidden 16, 2 heads of 8, FFN 32, GELU
    words = (tiny_bert / "vocab.txt").read_text().split()[5:]  # after the special tokens
    rng = random.Random(0)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
             for _ in range(64)]
    return teacher, WordPiece(tiny_bert, max_len=8).encode(texts)


def student(**kw):
    torch.manual_seed(1)
    return Student(StudentConfig(vocab_size=11, tokenizer_vocab=11, unk_id=1, max_len=8,
                                 span_ramp=4, dropout=0.0, **kw))


def test_layer_computed_from_weights_equals_the_teachers_forward(teacher_and_batch):
    teacher, batch = teacher_and_batch
    st = layer_states(teacher, batch, 0)
    real = batch.attention_mask.bool()
    torch.testing.assert_close(st["out"][real], st["next"][real], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"teacher layer must be in 1..1, not 2"):
        layer_states(teacher, batch, 1)


def test_full_width_student_tracks_the_teacher_layer(teacher_and_batch):
    teacher, batch = teacher_and_batch
    s = student(hidden=16, heads=2, ffn=32, act="gelu", emb_dim=16)
    info = init_from_teacher(s, teacher, batch, 1)
    assert info["heads"] == [0, 1]
    assert info["kept_energy"] == pytest.approx(1.0, abs=1e-5)
    # Left: the student's LayerNorms normalise over rotated coordinates (fitted by least
    # squares) and its embeddings are fitted linearly. A random student is at about 1.
    assert info["rel_err_embed"] < 0.2
    assert info["rel_err_layer"] < 0.35


def test_heads_and_units_that_carry_nothing_are_not_chosen(tiny_bert, teacher_and_batch):
    _, batch = teacher_and_batch
    teacher = Teacher(tiny_bert).eval()
    lay = teacher.encoder.encoder.layer[0]
    with torch.no_grad():
        lay.attention.output.dense.weight[:, :8] = 0      # head 0 writes nothing
        lay.output.dense.weight[:, ::2] = 0               # even FFN units write nothing
    s = student(hidden=8, heads=1, ffn=16, emb_dim=8)
    info = init_from_teacher(s, teacher, batch, 1)
    assert info["heads"] == [1]
    # 16 of the 32 units write something, and the student has 16: exactly those.
    assert bool((s.ff2.weight.norm(dim=0) > 0).all())
    assert info["rel_err_layer"] < 1.0


def test_sizes_a_teacher_layer_cannot_initialise_are_refused(teacher_and_batch):
    teacher, batch = teacher_and_batch
    with pytest.raises(ValueError, match="teacher heads are 8 wide and the student's 4"):
        init_from_teacher(student(hidden=8, heads=2, ffn=16, emb_dim=8), teacher, batch, 1)
    with pytest.raises(ValueError, match="larger than the teacher layer"):
        init_from_teacher(student(hidden=16, heads=2, ffn=64, emb_dim=8), teacher, batch, 1)
