"""The SU4MLC word tokenizer: lower-cased words, numbers as `#`, punctuation split off, a capped word vocabulary.

The whole text pipeline lives in the `tokenizers` backend (`tokenizer.json`), so a saved tokenizer gives the
same ids when it is loaded by the generic `TokenizersBackend` (`PreTrainedTokenizerFast`) of transformers,
without this package.

Normalisation, in order:

1. NFKC (full-width and compatibility characters fold to their plain forms, e.g. `１２` -> `12`), then lower-casing.
2. Every number becomes `#`: a number is a run of digits with optional `.`/`,` groups inside, so `5.93`,
   `1,000`, `1,000.50` and `1987` are each one `#`. Digits inside a word are numbers too: `covid19` ->
   `covid#`, `3rd` -> `#rd`, `mp3` -> `mp#`; step 3 then splits the `#` off (`covid`, `#`), so the word part
   shares its embedding with the plain word and the vocabulary does not fill up with `1980s`, `1990s`, ...
3. Pre-tokenisation: split on whitespace, then every character that is neither a letter/digit/underscore nor
   whitespace (punctuation, symbols, emoji, and `#` itself) becomes a token of its own. An apostrophe between
   two word characters stays inside the word (`don't`, `o'clock`); any other apostrophe is split off.

Each resulting word is one token (a `WordLevel` model): a word outside the vocabulary becomes `<unk>`, so the
number of tokens of a text is its number of words whatever the vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers.tokenization_utils_tokenizers import TokenizersBackend

from .label_vocab import WORD_PAD_ID

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
# The encoders embed and mask word padding at WORD_PAD_ID (0).
PAD_TOKEN_ID, UNK_TOKEN_ID = WORD_PAD_ID, 1
NUMBER_TOKEN = "#"
# A digit run with `.`/`,` groups inside: `5.93`, `1,000`, `1987`. A trailing `.` (end of sentence) is not part of it.
NUMBER_PATTERN = r"\d+(?:[.,]\d+)*"
# What is split off as a token of its own: any non-word, non-space character except an apostrophe that has a
# word character on both sides.
PUNCTUATION_PATTERN = r"[^\w\s']|'(?!\w)|(?<!\w)'"

VOCAB_FILES_NAMES = {"tokenizer_file": "tokenizer.json"}


def build_word_level_backend(vocab: dict[str, int], unk_token: str = UNK_TOKEN) -> Tokenizer:
    """The `tokenizers` pipeline of `SU4MLCTokenizer` (see the module docstring) over the word vocabulary `vocab`."""
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=unk_token))
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Lowercase(), normalizers.Replace(Regex(NUMBER_PATTERN), NUMBER_TOKEN)]
    )
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(PUNCTUATION_PATTERN), behavior="isolated")]
    )
    return backend


class SU4MLCTokenizer(TokenizersBackend):
    """Word-level tokenizer of SU4MLC, backed by the `tokenizers` library (a `WordLevel` model).

    No BOS/EOS is added to the text: the encoder reads the words only. `<pad>` is id 0 and `<unk>` id 1; the
    words follow by descending training frequency (see [`~SU4MLCTokenizer.train_from_texts`]). A literal
    `<pad>` or `<unk>` inside a text is read as the words `<`, `pad`, `>` (`split_special_tokens=True` unless
    given otherwise).

    It turns texts into word ids only. `decode`/`batch_decode` raise a `ValueError`: the ids a user has at hand
    are `generate()`'s, which are label ids, and reading them as words would give plausible nonsense. Turn them into
    labels with [`~SU4MLCForMultiLabelClassification.decode_labels`]; `convert_ids_to_tokens` still shows the words
    of word ids.

    Args:
        vocab (`dict[str, int]`, *optional*):
            Word to id, with `pad_token` at 0 and `unk_token` at 1. Defaults to the two special tokens only
            (every word is then `<unk>`, which still counts words correctly).
        unk_token (`str`, *optional*, defaults to `"<unk>"`):
            The token of out-of-vocabulary words.
        pad_token (`str`, *optional*, defaults to `"<pad>"`):
            The padding token.
        kwargs:
            Passed to [`TokenizersBackend`] (e.g. `model_max_length`).

    Example:

    ```python
    >>> tokenizer = SU4MLCTokenizer.train_from_texts(["Prices rose 5.93% in 1987.", "Prices fell."])
    >>> tokenizer.convert_ids_to_tokens(tokenizer("Prices ROSE by 1,000!")["input_ids"])
    ['prices', 'rose', '<unk>', '#', '<unk>']
    ```
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    padding_side = "right"
    model = WordLevel

    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        unk_token: str = UNK_TOKEN,
        pad_token: str = PAD_TOKEN,
        **kwargs,
    ):
        if vocab is None:
            vocab = {str(pad_token): PAD_TOKEN_ID, str(unk_token): UNK_TOKEN_ID}
        if sorted(vocab.values()) != list(range(len(vocab))):
            # `tokenizer.json` stores the words in id order and loading renumbers them 0, 1, ...
            raise ValueError("The vocabulary ids must be 0, 1, ..., len(vocab) - 1, each once.")
        if vocab.get(str(pad_token)) != PAD_TOKEN_ID or vocab.get(str(unk_token)) != UNK_TOKEN_ID:
            raise ValueError(
                f"The vocabulary must map {pad_token!r} to {PAD_TOKEN_ID} and {unk_token!r} to {UNK_TOKEN_ID} "
                f"(the encoders pad words with id 0), got {vocab.get(str(pad_token))} and {vocab.get(str(unk_token))}."
            )
        self._tokenizer = build_word_level_backend(vocab, unk_token=str(unk_token))
        # A literal "<pad>" or "<unk>" in a text is read as words ("<", "pad", ">"), so the pad id never occurs
        # inside a text.
        kwargs.setdefault("split_special_tokens", True)
        super().__init__(unk_token=unk_token, pad_token=pad_token, **kwargs)

    @classmethod
    def _from_pretrained(cls, resolved_vocab_files, pretrained_model_name_or_path, *args, **kwargs):
        """Loads the saved files; a truncated or corrupt `tokenizer.json` or `tokenizer_config.json` raises an
        `OSError` naming the file (the JSON parser's own error names neither)."""
        # The parent pops entries of `resolved_vocab_files`: list them first.
        files = sorted(name for name in resolved_vocab_files.values() if isinstance(name, str))
        try:
            return super()._from_pretrained(resolved_vocab_files, pretrained_model_name_or_path, *args, **kwargs)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise OSError(
                f"Cannot read the tokenizer in {pretrained_model_name_or_path} ({', '.join(files)}): {error}. "
                "A file is truncated or corrupt (was its save interrupted?)."
            ) from error

    def _decode(self, token_ids, skip_special_tokens: bool = False, **kwargs) -> str:
        raise ValueError(
            "SU4MLCTokenizer does not decode ids into text: generate() returns label ids, not word ids. Use "
            "model.decode_labels(generated_ids) for label names (or tokenizer.convert_ids_to_tokens for the words of "
            "word ids)."
        )

    @classmethod
    def train_from_texts(
        cls,
        texts: Iterable[str] | Iterable[list[str]],
        vocab_size: int = 50_000,
        min_frequency: int = 1,
        **kwargs,
    ) -> SU4MLCTokenizer:
        """Builds the word vocabulary from training texts.

        The texts are streamed to the `tokenizers` trainer, never collected. Words are ranked by descending
        count, ties by the word (Unicode code point order), which makes the vocabulary independent of the text
        order; the ranked words after the two special tokens fill the vocabulary up to `vocab_size`.

        Args:
            texts (`Iterable[str]` or `Iterable[list[str]]`):
                The training texts, one by one or in batches (a `datasets` column, a generator, ...).
            vocab_size (`int`, *optional*, defaults to 50000):
                The vocabulary size, `<pad>` and `<unk>` included.
            min_frequency (`int`, *optional*, defaults to 1):
                Words seen fewer times are left out (they become `<unk>`).
            kwargs:
                Passed to the constructor (e.g. `model_max_length`).
        """
        if isinstance(texts, str):
            # A bare string would be read as a sequence of one-character texts.
            raise TypeError("train_from_texts expects an iterable of texts, not a single string.")
        if vocab_size <= UNK_TOKEN_ID + 1:
            raise ValueError(f"vocab_size must leave room for words beside <pad> and <unk>, got {vocab_size}.")
        backend = build_word_level_backend({PAD_TOKEN: PAD_TOKEN_ID, UNK_TOKEN: UNK_TOKEN_ID})
        trainer = WordLevelTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[PAD_TOKEN, UNK_TOKEN],
            show_progress=False,
        )
        backend.train_from_iterator(texts, trainer=trainer)
        return cls(vocab=backend.get_vocab(), **kwargs)


__all__ = ["SU4MLCTokenizer", "build_word_level_backend"]
