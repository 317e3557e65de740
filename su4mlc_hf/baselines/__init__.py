"""The comparison systems of the SU4MLC paper (Lin et al., EMNLP 2018).

Table 2:

- [`fit_classic_baseline`]: BR, CC and LP with LinearSVC or logistic regression on TF-IDF word 1-2-grams
  (scikit-learn; `classic.py`).
- [`KimCNNForMultiLabelClassification`]: Kim (2014) CNN with one sigmoid per label (`modeling_cnn.py`).
- [`CNNRNNForMultiLabelClassification`]: CNN-RNN (Chen et al., 2017), a CNN text feature starting an LSTM that
  generates the labels (`modeling_cnn_rnn.py`).

Table 5:

- [`SU4MLCHierarchicalForMultiLabelClassification`]: Hier-5/10/15/20, SU4MLC with a word-level + sentence-level
  BiLSTM encoder instead of MDC (`modeling_hierarchical.py`).

Importing this package registers the three neural models with `AutoConfig` and `AutoModel` (CNN-RNN and Hier also
with `AutoModelForSeq2SeqLM`), so their saved folders load through the Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .classic import (
    CLASSIC_BASELINES,
    CLASSIFIERS,
    ClassicMultiLabelBaseline,
    build_classifier,
    build_vectorizer,
    fit_classic_baseline,
)
from .modeling_cnn import KimCNNConfig, KimCNNForMultiLabelClassification
from .modeling_cnn_rnn import CNNRNNConfig, CNNRNNForMultiLabelClassification
from .modeling_hierarchical import (
    SU4MLCHierarchicalConfig,
    SU4MLCHierarchicalForMultiLabelClassification,
    compare_parameter_counts,
    count_parameters,
)

AutoConfig.register(KimCNNConfig.model_type, KimCNNConfig, exist_ok=True)
AutoModel.register(KimCNNConfig, KimCNNForMultiLabelClassification, exist_ok=True)
AutoConfig.register(CNNRNNConfig.model_type, CNNRNNConfig, exist_ok=True)
AutoModel.register(CNNRNNConfig, CNNRNNForMultiLabelClassification, exist_ok=True)
AutoModelForSeq2SeqLM.register(CNNRNNConfig, CNNRNNForMultiLabelClassification, exist_ok=True)
AutoConfig.register(SU4MLCHierarchicalConfig.model_type, SU4MLCHierarchicalConfig, exist_ok=True)
AutoModel.register(SU4MLCHierarchicalConfig, SU4MLCHierarchicalForMultiLabelClassification, exist_ok=True)
AutoModelForSeq2SeqLM.register(SU4MLCHierarchicalConfig, SU4MLCHierarchicalForMultiLabelClassification, exist_ok=True)

__all__ = [
    "CLASSIC_BASELINES",
    "CLASSIFIERS",
    "CNNRNNConfig",
    "CNNRNNForMultiLabelClassification",
    "ClassicMultiLabelBaseline",
    "KimCNNConfig",
    "KimCNNForMultiLabelClassification",
    "SU4MLCHierarchicalConfig",
    "SU4MLCHierarchicalForMultiLabelClassification",
    "build_classifier",
    "build_vectorizer",
    "compare_parameter_counts",
    "count_parameters",
    "fit_classic_baseline",
]
