"""Pretrained word vectors: read from a GloVe / word2vec text file that the test writes, one line at a time."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from su4mlc_hf import SU4MLCTokenizer
from su4mlc_hf.word_vectors import WordVectorsError, load_word_vectors, word_vectors_dimension

from .conftest import DATA_DIR, REPO_ROOT, goemotions_train_texts, load_script

run_mlc = load_script(REPO_ROOT / "examples" / "run_mlc.py", "run_mlc_for_word_vectors")


def write_vectors(path, vectors: dict[str, list[float]], header: bool = False) -> None:
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [f"{word} {' '.join(str(value) for value in vector)}" for word, vector in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("header", [False, True])
def test_vocabulary_words_get_their_vectors_and_others_keep_theirs(tmp_path, header):
    tokenizer = SU4MLCTokenizer.train_from_texts(["the cat sat", "the dog"], vocab_size=50)
    embedding = torch.nn.Embedding(len(tokenizer), 3, padding_idx=0)
    before = embedding.weight.detach().clone()
    path = tmp_path / "vectors.txt"
    write_vectors(path, {"cat": [1.0, 2.0, 3.0], "zebra": [9.0, 9.0, 9.0], "dog": [-1.0, 0.5, 0.0]}, header)
    assert word_vectors_dimension(path) == 3
    report = load_word_vectors(path, tokenizer.get_vocab(), embedding)
    vocab = tokenizer.get_vocab()
    assert report.vocabulary_words_found == 2 and report.words_in_file == 3
    assert embedding.weight[vocab["cat"]].tolist() == [1.0, 2.0, 3.0]
    assert embedding.weight[vocab["dog"]].tolist() == [-1.0, 0.5, 0.0]
    assert torch.equal(embedding.weight[vocab["the"]], before[vocab["the"]])


def test_trailing_spaces_do_not_count_as_a_component(tmp_path):
    """Some GloVe files end each line with a space: the dimension and the vectors read it alike."""
    path = tmp_path / "vectors.txt"
    path.write_text("cat 1 2 3 \ndog 4 5 6 \n", encoding="utf-8")
    assert word_vectors_dimension(path) == 3
    tokenizer = SU4MLCTokenizer.train_from_texts(["cat dog"], vocab_size=50)
    embedding = torch.nn.Embedding(len(tokenizer), 3, padding_idx=0)
    assert load_word_vectors(path, tokenizer.get_vocab(), embedding).vocabulary_words_found == 2
    assert embedding.weight[tokenizer.get_vocab()["dog"]].tolist() == [4.0, 5.0, 6.0]


def test_a_line_of_another_dimension_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("cat 1 2 3\ndog 1 2\n", encoding="utf-8")
    tokenizer = SU4MLCTokenizer.train_from_texts(["cat dog"], vocab_size=50)
    with pytest.raises(WordVectorsError, match=r"vectors.txt, line 2: 2 vector components, expected 3"):
        load_word_vectors(path, tokenizer.get_vocab(), torch.nn.Embedding(len(tokenizer), 3))


def test_run_mlc_starts_from_the_vectors_and_takes_their_dimension(tmp_path):
    words = sorted({word for text in goemotions_train_texts() for word in text.lower().split()})[:200]
    vectors = {word: [float(index % 7), float(index % 5) / 10, -1.0, 0.25] for index, word in enumerate(words)}
    path = tmp_path / "vectors.txt"
    write_vectors(path, vectors)
    output_dir = tmp_path / "out"
    run_mlc.main([
        "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions", "--output_dir",
        str(output_dir), "--do_train", "--embeddings_file", str(path), "--hidden_size", "16", "--max_steps", "1",
        "--learning_rate", "1e-12", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end",
        "false", "--disable_tqdm", "true",
    ])  # fmt: skip
    assert json.loads((output_dir / "config.json").read_text())["embedding_size"] == 4
    weights = load_file(output_dir / "model.safetensors")["encoder.embed_tokens.weight"]
    vocab = json.loads((output_dir / "tokenizer.json").read_text())["model"]["vocab"]
    found = [word for word in words if word in vocab]
    assert len(found) > 50
    for word in found:
        torch.testing.assert_close(weights[vocab[word]], torch.tensor(vectors[word]), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="--embedding_size 8 but --embeddings_file"):
        run_mlc.main([
            "--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions", "--output_dir",
            str(tmp_path / "other"), "--do_train", "--embeddings_file", str(path), "--embedding_size", "8",
        ])  # fmt: skip
