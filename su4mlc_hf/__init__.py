"""su4mlc-hf: SU4MLC multi-label text classification (Lin et al., EMNLP 2018) as a Hugging Face transformers model.

Importing the package registers the config, model and tokenizer with the Auto classes, so that
`AutoConfig`, `AutoModel`, `AutoModelForSeq2SeqLM` and `AutoTokenizer` load saved SU4MLC folders.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_su4mlc import SU4MLCConfig
from .label_vocab import LabelVocabulary, UnknownLabelError
from .modeling_su4mlc import SU4MLCDecoderCache, SU4MLCForMultiLabelClassification, SU4MLCPreTrainedModel
from .version import __version__

AutoConfig.register(SU4MLCConfig.model_type, SU4MLCConfig, exist_ok=True)
AutoModel.register(SU4MLCConfig, SU4MLCForMultiLabelClassification, exist_ok=True)
AutoModelForSeq2SeqLM.register(SU4MLCConfig, SU4MLCForMultiLabelClassification, exist_ok=True)
# Saved folders carry an `auto_map` and the code files, so they also load where this package is not installed
# (`trust_remote_code=True`).
SU4MLCConfig.register_for_auto_class()
SU4MLCForMultiLabelClassification.register_for_auto_class("AutoModel")

__all__ = [
    "LabelVocabulary",
    "SU4MLCConfig",
    "SU4MLCDecoderCache",
    "SU4MLCForMultiLabelClassification",
    "SU4MLCPreTrainedModel",
    "UnknownLabelError",
    "__version__",
]
