"""`evaluate` metric for multi-label classification: SU4MLC's scores (`su4mlc_hf.metrics.multilabel_scores`).

Load it from its file, which works offline (`evaluate.load` of a Hub metric does not):

    >>> from su4mlc_hf.metrics import load_evaluate_metric
    >>> metric = load_evaluate_metric()  # = evaluate.load(".../su4mlc_hf/evaluate_metric/su4mlc_multilabel.py")

`evaluate` copies this script into its modules cache and imports it from there, so it cannot import its
package relatively: it imports `su4mlc_hf` absolutely, which must be installed (or on `sys.path`). The scores
are computed by `su4mlc_hf.metrics` and nowhere else.
"""

import datasets
import evaluate

try:
    from su4mlc_hf.metrics import METRIC_NAMES, multi_hot, multilabel_scores
except ImportError as error:
    raise ImportError(
        "The su4mlc_multilabel metric computes its scores with the su4mlc_hf package, which cannot be imported: "
        "install it (`pip install su4mlc-hf`, or `pip install -e .` in its repository) or put its repository "
        "root on sys.path."
    ) from error

_CITATION = """\
@inproceedings{lin-etal-2018-semantic,
    title = "Semantic-Unit-Based Dilated Convolution for Multi-Label Text Classification",
    author = "Lin, Junyang and Su, Qi and Yang, Pengcheng and Ma, Shuming and Sun, Xu",
    booktitle = "Proceedings of the 2018 Conference on Empirical Methods in Natural Language Processing",
    year = "2018",
    pages = "4554--4564",
}
"""

_DESCRIPTION = f"""\
Multi-label classification scores over label sets given as lists of label indices: {", ".join(METRIC_NAMES)}.
Micro and macro precision/recall/F1 score 0.0 on a zero denominator (scikit-learn's `zero_division=0`; macro
averages over all `num_labels` labels); example F1 scores 1.0 for an example whose gold and predicted sets are
both empty (scikit-learn's `f1_score(average="samples", zero_division=1.0)`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[list[int]]`):
        Predicted label set of each example, as label indices in `[0, num_labels)` (not label token ids).
    references (`list[list[int]]`):
        Gold label set of each example, as label indices.
    num_labels (`int`):
        Number of labels: macro scores average over all of them, present or not.

Returns:
    `dict[str, float]`: hamming_loss, micro_precision, micro_recall, micro_f1, macro_precision, macro_recall,
    macro_f1, subset_accuracy, example_f1.

Example:
    >>> metric.compute(predictions=[[0], [1, 2]], references=[[0, 1], [2]], num_labels=3)["micro_f1"]
    0.6666666666666666
"""


# `evaluate` names the module after the class in snake case: this spelling gives "su4mlc_multilabel".
@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Su4mlcMultilabel(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.Value("int64")),
                    "references": datasets.List(datasets.Value("int64")),
                }
            ),
            reference_urls=["https://aclanthology.org/D18-1485/"],
        )

    def _compute(self, predictions, references, num_labels=None):
        if num_labels is None:
            raise ValueError(
                "su4mlc_multilabel needs `num_labels` (compute(..., num_labels=...)): macro scores average over "
                "all labels, which the label lists alone do not tell."
            )
        return multilabel_scores(multi_hot(references, num_labels), multi_hot(predictions, num_labels))
