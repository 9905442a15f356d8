"""Test-session settings shared by every test file."""

import pytest
import torch

# The suite runs on 2 cores with pytest-xdist (one worker per core); more intra-op threads per
# worker only contend, which makes small tensor operations many times slower.
torch.set_num_threads(1)

TINY_BERT_WORDS = ["good", "bad", "film", "the", "is", "very"]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    """A tiny BERT checkpoint directory (random weights) in the Hugging Face layout."""
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_BERT_WORDS]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    return d
