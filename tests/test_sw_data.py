import pytest

from sw.data import ENV_VAR, Example, load_split, load_tsv, resolve_data_dir


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_single_sentences(tmp_path):
    p = write(tmp_path / "train.tsv", "sentence\tlabel\nit is good .\t1\nawful\t0\n")
    assert load_tsv(p) == [Example("it is good .", 1), Example("awful", 0)]


def test_sentence_pairs_and_limit(tmp_path):
    p = write(tmp_path / "dev.tsv",
              "index\tsentence1\tsentence2\tlabel\n0\ta b\tc d\t1\n1\te\tf\t0\n")
    assert load_tsv(p) == [Example("a b", 1, "c d"), Example("e", 0, "f")]
    assert load_tsv(p, limit=1) == [Example("a b", 1, "c d")]


def test_split_from_environment(tmp_path, monkeypatch):
    write(tmp_path / "dev.tsv", "sentence\tlabel\nfine\t1\n")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_split(None, "dev") == [Example("fine", 1)]
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(ValueError, match="no data directory given"):
        resolve_data_dir(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_data_dir(tmp_path / "missing")
    with pytest.raises(ValueError, match="split must be 'train' or 'dev', not 'test'"):
        load_split(tmp_path, "test")


@pytest.mark.parametrize("text, message", [
    ("sentence\tlabel\n\t1\n", r"train.tsv:2: empty sentence"),
    ("sentence\tlabel\nok\tpos\n", r"train.tsv:2: label must be a non-negative integer, not 'pos'"),
    ("sentence\tlabel\nok\t-1\n", r"label must be a non-negative integer, not -1"),
    ("sentence\tlabel\nok\n", r"train.tsv:2: expected 2 tab-separated fields, not 1"),
    ("text\tlabel\nok\t1\n", r"no known text column"),
    ("sentence\tclass\nok\t1\n", r"header must have a 'label' column"),
    ("sentence\tlabel\n", r"no examples after the header"),
    ("", r"file is empty"),
])
def test_bad_files_are_refused(tmp_path, text, message):
    p = write(tmp_path / "train.tsv", text)
    with pytest.raises(ValueError, match=message):
        load_tsv(p)
