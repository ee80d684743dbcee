"""Instruction lookup, unseen-instruction errors and the encoder fallbacks."""
import numpy as np
import pytest
import torch

from selfflow_robot.data.language import (
    EncoderFallback,
    HashingTextEncoder,
    HFTextEncoder,
    InstructionEmbedder,
    LanguageTable,
    UnknownInstructionError,
    normalize_instruction,
)
from selfflow_robot.errors import UserError

INSTRUCTIONS = ["open top drawer", "close middle drawer", "pick coke can", "move blue chip near apple"]


def make_table(seed=0):
    rng = np.random.default_rng(seed)
    return LanguageTable(INSTRUCTIONS, rng.standard_normal((len(INSTRUCTIONS), 512)).astype(np.float32))


def test_lookup_is_exact_up_to_case_spaces_and_period(tmp_path):
    table = make_table()
    emb = InstructionEmbedder(table)
    np.testing.assert_array_equal(emb("Open  top drawer."), table.embeddings[0])
    assert normalize_instruction("  Pick Coke can!") == "pick coke can"
    path = tmp_path / "language_table.safetensors"
    table.save(path)
    loaded = LanguageTable.load(path)
    assert sorted(loaded.instructions) == sorted(INSTRUCTIONS)
    np.testing.assert_array_equal(loaded.get("close middle drawer"), table.embeddings[1])


def test_unseen_instruction_without_encoder_is_a_clear_user_error():
    emb = InstructionEmbedder(make_table())
    with pytest.raises(UnknownInstructionError) as e:
        emb("open the top drawer")
    msg = str(e.value)
    assert isinstance(e.value, UserError)
    assert "'open top drawer'" in msg and "text encoder" in msg and "4 known" in msg


def test_nearest_fallback_maps_a_rephrasing_to_its_instruction():
    table = make_table()
    emb = InstructionEmbedder(table, HashingTextEncoder(), mode="nearest")
    np.testing.assert_array_equal(emb("please open the top drawer"), table.embeddings[0])
    np.testing.assert_array_equal(emb("pick up the coke can"), table.embeddings[2])


def test_ridge_fallback_reproduces_known_pairs_and_gives_512d_for_new_text():
    table = make_table()
    fb = EncoderFallback(HashingTextEncoder(), table, mode="ridge", ridge=1e-6)
    np.testing.assert_allclose(fb("pick coke can"), table.embeddings[2], atol=1e-3)
    new = fb("pick the coke can")
    assert new.shape == (512,) and new.dtype == np.float32 and np.isfinite(new).all()
    # A rephrasing lands nearer its own instruction than any other.
    d = np.linalg.norm(table.embeddings - new, axis=1)
    assert int(np.argmin(d)) == 2


def test_table_from_mapping_and_shape_checks():
    t = LanguageTable.coerce({"a": torch.ones(512), "b": np.zeros(512)})
    assert t.dim == 512 and len(t) == 2 and "A" in t
    with pytest.raises(UserError, match="embeddings of shape"):
        LanguageTable(["a"], np.zeros((2, 512)))
    with pytest.raises(UserError, match="empty"):
        EncoderFallback(HashingTextEncoder(), LanguageTable.from_mapping({}))


def test_hugging_face_encoder_from_a_local_dir(tmp_path):
    """A tiny BERT written here (no download) plugs in as the encoder for unseen instructions."""
    transformers = pytest.importorskip("transformers")

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "open", "close", "top", "middle", "drawer", "pick",
             "coke", "can", "the", "please", "move", "blue", "chip", "near", "apple"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    transformers.BertTokenizer(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=32)
    transformers.BertModel(cfg).save_pretrained(tmp_path)

    enc = HFTextEncoder(tmp_path)
    out = enc.encode(["open top drawer", "pick the coke can please"])
    assert out.shape == (2, 32) and np.isfinite(out).all()
    table = make_table()
    emb = InstructionEmbedder(table, enc, mode="ridge")
    assert emb("close the middle drawer").shape == (512,)
    np.testing.assert_array_equal(emb("Pick coke can"), table.embeddings[2])  # known: straight from the table
