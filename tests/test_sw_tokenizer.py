import pytest
import torch

from sw.tokenizer import WordPiece


@pytest.fixture(scope="module")
def tok():
    return WordPiece(max_len=8)


def test_special_tokens_and_padding(tok):
    assert (tok.cls_id, tok.sep_id, tok.pad_id, tok.unk_id) == (101, 102, 0, 100)
    b = tok.encode(["Good film"])
    words = tok.tokens("Good film")
    assert words == ["good", "film"]  # lower-cased WordPiece
    ids = [101, *(tok._tok.token_to_id(w) for w in words), 102, 0, 0, 0, 0]
    assert b.input_ids[0].tolist() == ids
    assert b.attention_mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert b.n_truncated == 0
    assert tok.encode(["a b", "a"], pad_to="longest").input_ids.shape == (2, 4)


def test_pairs_have_segments(tok):
    b = tok.encode(["a"], ["b c"])
    assert b.input_ids[0, :6].tolist()[0] == 101
    assert b.token_type_ids[0].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]


def test_truncation_is_counted(tok):
    b = tok.encode(["one two three four five six seven eight nine", "short"])
    assert b.input_ids.shape == (2, 8)
    assert b.input_ids[0, -1] == tok.sep_id
    assert b.n_truncated == 1
    assert bool(torch.all(b.attention_mask[0] == 1))


def test_bad_inputs_are_refused(tok):
    with pytest.raises(ValueError, match=r"texts_a\[1\] must be a non-empty string, not '  '"):
        tok.encode(["fine", "  "])
    with pytest.raises(ValueError, match="nothing to encode"):
        tok.encode([])
    with pytest.raises(TypeError, match="not a single string"):
        tok.encode("text")
    with pytest.raises(ValueError, match="texts_b must have as many entries"):
        tok.encode(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="max_len must be an integer >= 3, not 2"):
        WordPiece(max_len=2)
    with pytest.raises(ValueError, match="pad_to must be"):
        tok.encode(["a"], pad_to="none")


def test_vocab_txt_directory(tmp_path):
    (tmp_path / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"]))
    t = WordPiece(tmp_path, max_len=6)
    assert t.vocab_size == 8
    assert t.encode(["Hello worlds zzz"]).input_ids[0].tolist() == [2, 5, 6, 7, 1, 3]
