"""`model.explain`: the attention of each predicted label over words and semantic units, its spans, its picture."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from su4mlc_hf import SU4MLCTokenizer
from su4mlc_hf.explain import AttentionExplanation, save_attention_figure, semantic_unit_spans

from .conftest import (
    DATA_DIR,
    goemotions_train_texts,
    run_without_package,
    save_tiny_model_and_tokenizer,
    tiny_config,
    tiny_model,
    train_on_goemotions_sample,
)
from .test_baselines import tiny_hierarchical
from .test_run_mlc import TINY_MODEL_ARGS, run_mlc

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny hybrid SU4MLC trained for a few seconds on the GoEmotions sample, its tokenizer, and 12 texts of 2 to 30
    words: 11 of its training texts, which it has fitted enough to predict labels for (a model this small stops
    before any label on most unseen texts), and a short one."""
    model, prepared, tokenizer, _ = train_on_goemotions_sample(tmp_path_factory.mktemp("explain"), size=32, epochs=25)
    texts = prepared["train"]["text"][:11] + ["so sad"]
    return model, tokenizer, texts


def assert_distributions(weights: np.ndarray, rows: int, columns: int) -> None:
    """`weights` has one row per label over `columns` positions, each a distribution. The softmax also spans the
    batch's padding, so rows summing to 1 over the text's own positions means zero weight on the masked ones."""
    assert weights.shape == (rows, columns)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), np.ones(rows), rtol=0, atol=1e-5)


def test_each_label_has_distributions_over_the_words_and_units_of_its_text(trained):
    model, tokenizer, texts = trained
    explanations = model.explain(texts, tokenizer, batch_size=5)
    assert sum(len(explanation.labels) for explanation in explanations) >= len(texts)  # the check is not vacuous
    for text, explanation, predicted in zip(texts, explanations, model.predict(texts, tokenizer, return_scores=True)):
        assert isinstance(explanation, AttentionExplanation) and explanation.text == text
        assert explanation.labels == [label for label, _ in predicted]
        assert explanation.scores == pytest.approx([score for _, score in predicted], abs=1e-6)
        # The words are the text's own, one per word id the encoder read.
        assert len(explanation.words) == len(tokenizer(text)["input_ids"])
        assert "".join(explanation.words) == "".join(text.split())
        assert_distributions(explanation.word_attention, len(explanation.labels), len(explanation.words))
        assert_distributions(explanation.unit_attention, len(explanation.labels), len(explanation.unit_spans))
    short = explanations[-1]
    assert short.words == ["so", "sad"] and short.unit_spans == [(0, 1)]  # zero-extended to one unit


def test_weights_are_those_of_the_step_that_emitted_each_label(trained):
    """Greedy `generate()` reports the attention of each step as it decodes; the explanation's rows, teacher-forced
    over the predicted labels, are the same weights."""
    model, tokenizer, texts = trained
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    generated = model.generate(**batch, num_beams=1, output_attentions=True, return_dict_in_generate=True)
    explanations = model.explain(texts, tokenizer, num_beams=1)
    compared = 0
    for row, explanation in enumerate(explanations):
        for step in range(len(explanation.labels)):
            unit_weights, word_weights = generated.cross_attentions[step]
            torch.testing.assert_close(
                torch.from_numpy(explanation.word_attention[step]), word_weights[row, 0, : len(explanation.words)]
            )
            torch.testing.assert_close(
                torch.from_numpy(explanation.unit_attention[step]), unit_weights[row, 0, : len(explanation.unit_spans)]
            )
            compared += 1
    assert compared >= len(texts)


def test_a_text_is_explained_alike_alone_and_in_a_batch(trained):
    model, tokenizer, texts = trained
    alone = model.explain(texts[-1], tokenizer)
    in_batch = model.explain(texts, tokenizer)[-1]
    assert alone.labels == in_batch.labels and alone.unit_spans == in_batch.unit_spans
    np.testing.assert_allclose(alone.word_attention, in_batch.word_attention, atol=1e-6)
    np.testing.assert_allclose(alone.unit_attention, in_batch.unit_attention, atol=1e-6)


def test_unit_spans_of_the_papers_mdc():
    """Kernel 3, dilations 1, 2, 3, no padding: a unit sees 1 + 2 * 6 = 13 words, unit j words j to j + 12."""
    config = tiny_config()
    assert semantic_unit_spans(config, 20) == [(unit, unit + 12) for unit in range(8)]
    assert semantic_unit_spans(config, 13) == [(0, 12)]
    assert semantic_unit_spans(config, 4) == [(0, 3)]
    # The 2018 code's padding 1 shifts each of the 3 layers one word left: 20 + 6 - 12 = 14 units.
    padded = semantic_unit_spans(tiny_config(mdc_padding=1), 20)
    assert len(padded) == 14 and padded[0] == (0, 9) and padded[3] == (0, 12) and padded[-1] == (10, 19)
    # More padding than the kernels reach: the first units see only padding.
    assert semantic_unit_spans(tiny_config(mdc_kernel_size=2, mdc_dilation_rates=[1], mdc_padding=3), 2)[:3] == [
        None, None, (0, 0)
    ]  # fmt: skip


@pytest.mark.parametrize(
    "overrides",
    [{}, {"mdc_padding": 1}, {"mdc_kernel_size": 2, "mdc_dilation_rates": [1, 2, 4]}, {"mdc_dilation_rates": [1, 3]}],
    ids=["paper", "padding-1", "kernel-2", "dilations-1-3"],
)
@pytest.mark.parametrize("num_words", [3, 13, 25])
def test_unit_spans_are_the_words_each_unit_depends_on(overrides, num_words):
    """Checked against the model itself: the words whose annotations change a unit (a nonzero gradient, with a
    linear MDC so that no ReLU hides one) are exactly its span, and the model has as many units as spans."""
    model = tiny_model(mdc_activation="none", **overrides)
    spans = semantic_unit_spans(model.config, num_words)
    length = max(num_words, model.config.min_source_length)
    annotations = torch.randn(1, length, model.config.hidden_size)
    annotations[:, num_words:] = 0  # the encoder's zero extension of short texts
    annotations.requires_grad_(True)
    units, unit_mask = model.encoder.mdc(annotations, torch.tensor([num_words]))
    assert int(unit_mask.sum()) == len(spans)
    for unit, span in enumerate(spans):
        (gradient,) = torch.autograd.grad(units[0, unit].sum(), annotations, retain_graph=True)
        words = gradient[0, :num_words].abs().sum(-1).nonzero().flatten().tolist()
        assert words == list(range(span[0], span[1] + 1)), (unit, span)


@pytest.mark.parametrize("attention", ["none", "word", "mdc", "additive"])
def test_other_attention_types_give_the_weights_they_have(attention):
    model = tiny_model(attention=attention, max_labels=3)
    tokenizer = SU4MLCTokenizer.train_from_texts(goemotions_train_texts(), vocab_size=model.config.source_vocab_size)
    texts = goemotions_train_texts()[:6]
    explanations = model.explain(texts, tokenizer, num_beams=1)
    assert sum(len(explanation.labels) for explanation in explanations) > 0
    for explanation in explanations:
        rows = len(explanation.labels)
        if attention in ("word", "additive"):
            assert_distributions(explanation.word_attention, rows, len(explanation.words))
        else:
            assert explanation.word_attention is None
        if attention in ("mdc", "additive"):
            assert_distributions(explanation.unit_attention, rows, len(explanation.unit_spans))
            assert explanation.unit_spans == semantic_unit_spans(model.config, len(explanation.words))
        else:
            assert explanation.unit_attention is None and explanation.unit_spans == []


def test_baselines_with_another_encoder_are_refused():
    """A hierarchical model's "word" attention is over sentences: explaining it as words would mislabel it."""
    model = tiny_hierarchical()
    with pytest.raises(ValueError, match="explain\\(\\) reads SU4MLC's word encoder, but SU4MLCHierarchical"):
        model.explain(["a text"], SU4MLCTokenizer())


EXPLAIN_WITHOUT_PACKAGE = """
import json, sys
from transformers import AutoModel, AutoTokenizer

model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
explanation = model.explain("thanks so much, this made my day!", tokenizer, num_beams=1)
shown = {"module": type(model).__module__, "labels": explanation.labels, "spans": explanation.unit_spans,
         "word_sums": explanation.word_attention.sum(axis=1).tolist()}
print("\\n" + json.dumps(shown))  # on a line of its own, after the "run the custom code?" prompt
"""


def test_a_saved_folder_explains_where_the_package_is_not_installed(tmp_path):
    """Saved folders carry explain.py with the model code: `trust_remote_code=True` users get `explain` too."""
    model, tokenizer = save_tiny_model_and_tokenizer(tmp_path / "model")
    completed = run_without_package(EXPLAIN_WITHOUT_PACKAGE, str(tmp_path / "model"), folder=tmp_path)
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    expected = model.explain("thanks so much, this made my day!", tokenizer, num_beams=1)
    assert loaded["module"].startswith("transformers_modules.")
    assert loaded["labels"] == expected.labels and len(expected.labels) > 0
    assert loaded["word_sums"] == pytest.approx([1.0] * len(expected.labels), abs=1e-5)
    assert [tuple(span) for span in loaded["spans"]] == expected.unit_spans == [(0, 8)]


def assert_valid_png(path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    height, width, _ = imread(path).shape
    assert height > 100 and width > 100


def test_the_picture_is_a_png_heat_map(trained, tmp_path):
    model, tokenizer, texts = trained
    explanations = model.explain(texts, tokenizer)
    path = save_attention_figure(explanations[1], tmp_path / "pictures" / "attention.png")
    assert path == tmp_path / "pictures" / "attention.png"
    assert_valid_png(path)
    # A text without predicted labels still gets a picture, saying so.
    empty = AttentionExplanation(
        text="hm", words=["hm"], labels=[], scores=[], attention="hybrid", word_attention=np.zeros((0, 1)),
        unit_attention=np.zeros((0, 1)), unit_spans=[(0, 0)],
    )  # fmt: skip
    assert_valid_png(save_attention_figure(empty, tmp_path / "empty.png"))


def test_characters_the_font_lacks_draw_without_a_warning(tmp_path):
    """GoEmotions texts are full of emoji, which matplotlib's default font lacks: one warning per glyph per picture
    would say nothing a user can act on."""
    explanation = AttentionExplanation(
        text="love it 💜", words=["love", "it", "💜"], labels=["love"], scores=[0.9], attention="word",
        word_attention=np.array([[0.7, 0.1, 0.2]]), unit_attention=None, unit_spans=[],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_valid_png(save_attention_figure(explanation, tmp_path / "emoji.png"))


def test_run_mlc_explain_writes_a_picture_per_test_text(tmp_path):
    output_dir = tmp_path / "out"
    run_mlc.main(
        ["--dataset_dir", str(DATA_DIR / "goemotions"), "--dataset_format", "goemotions",
         "--output_dir", str(output_dir), "--do_train", "--do_predict", "--max_steps", "3",
         "--max_predict_samples", "10", "--eval_strategy", "no", "--save_strategy", "no",
         "--load_best_model_at_end", "false", "--explain", "3", *TINY_MODEL_ARGS]
    )  # fmt: skip
    pictures = sorted((output_dir / "attention").iterdir())
    assert [path.name for path in pictures] == ["0000.png", "0001.png", "0002.png"]
    for path in pictures:
        assert_valid_png(path)


def test_run_mlc_refuses_a_negative_explain_count(tmp_path):
    with pytest.raises(ValueError, match="--explain -1: give the number of test texts"):
        run_mlc.main(["--train_file", "x.jsonl", "--output_dir", str(tmp_path), "--explain", "-1"])


def test_without_matplotlib_run_mlc_explain_stops_before_any_work_and_drawing_says_what_to_install(
    tmp_path, monkeypatch
):
    explanation = AttentionExplanation(
        text="hm", words=["hm"], labels=[], scores=[], attention="word", word_attention=np.zeros((0, 1)),
        unit_attention=None, unit_spans=[],
    )  # fmt: skip
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(ImportError, match="--explain draws with matplotlib, which is not installed: pip install"):
        run_mlc.main(["--train_file", "missing.jsonl", "--output_dir", str(tmp_path / "out"), "--explain", "1"])
    assert not (tmp_path / "out").exists()
    with pytest.raises(ImportError, match="Drawing attention needs matplotlib: pip install matplotlib"):
        save_attention_figure(explanation, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
