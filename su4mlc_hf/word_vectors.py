"""Pretrained word vectors (GloVe / word2vec text format) for the encoder's word embeddings.

The file is read one line at a time (invalid UTF-8 read as U+FFFD: such words match no vocabulary word) and only the vectors of the tokenizer's words are kept, so a multi-GB file
costs the memory of the vocabulary's vectors, not of the file. Words the file lacks keep their random
initialisation; the vectors are trained further with the model (as in most uses of GloVe with LSTMs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch


class WordVectorsError(ValueError):
    """A word-vector file that cannot be read; the message names the file and line."""


@dataclass
class WordVectorsReport:
    path: str
    dimension: int
    words_in_file: int
    vocabulary_words_found: int
    vocabulary_size: int

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.dimension}-dimensional vectors for {self.vocabulary_words_found:,} of the "
            f"{self.vocabulary_size:,} vocabulary words ({self.words_in_file:,} words read)"
        )


def _vector_lines(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """`(line number, [word, v1, ..., vd])` for each vector line of `path`, read one line at a time; a word2vec header
    (`count dimension` on line 1) is skipped, and so are the trailing spaces some GloVe files leave."""
    with open(path, encoding="utf-8", errors="replace") as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.rstrip("\n").rstrip(" ").split(" ")
            if line_number == 1 and len(fields) == 2 and all(field.isdigit() for field in fields):
                continue
            yield line_number, fields


def word_vectors_dimension(path: str | os.PathLike) -> int:
    """The dimension of the vectors in `path` (from its first vector line)."""
    for line_number, fields in _vector_lines(path):
        if len(fields) < 2:
            raise WordVectorsError(f"{path}, line {line_number}: expected a word and its vector components.")
        return len(fields) - 1
    raise WordVectorsError(f"{path}: holds no vectors.")


def load_word_vectors(path: str | os.PathLike, vocab: dict[str, int], embedding: torch.nn.Embedding) -> WordVectorsReport:
    """
    Copies the vector of every vocabulary word found in `path` into its row of `embedding`.

    Args:
        path: a text file with one `word v1 v2 ... vd` line per word (GloVe), optionally after a word2vec header.
        vocab (`dict[str, int]`): word → row of `embedding` (e.g. `tokenizer.get_vocab()`).
        embedding (`torch.nn.Embedding` of shape `(vocab_size, d)`): the encoder's word embeddings.

    Raises:
        `WordVectorsError`: a line with another number of components than `d`, or a component that is not a number,
        naming the file and line.
    """
    dimension = embedding.embedding_dim
    found = 0
    words_read = 0
    with torch.no_grad():
        for line_number, fields in _vector_lines(path):
            words_read += 1
            if len(fields) != dimension + 1:
                raise WordVectorsError(
                    f"{path}, line {line_number}: {len(fields) - 1} vector components, expected {dimension} "
                    "(the embedding size)."
                )
            row = vocab.get(fields[0])
            if row is None or row >= embedding.num_embeddings or row == embedding.padding_idx:
                continue
            try:
                embedding.weight[row] = torch.tensor([float(value) for value in fields[1:]])
            except ValueError:
                raise WordVectorsError(f"{path}, line {line_number}: a vector component is not a number.") from None
            found += 1
    return WordVectorsReport(str(path), dimension, words_read, found, len(vocab))


__all__ = ["WordVectorsError", "WordVectorsReport", "load_word_vectors", "word_vectors_dimension"]
