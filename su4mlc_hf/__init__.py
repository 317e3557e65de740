"""su4mlc-hf: SU4MLC multi-label text classification (Lin et al., EMNLP 2018) as a Hugging Face transformers model.

Importing the package registers the config, model and tokenizer with the Auto classes, so that
`AutoConfig`, `AutoModel`, `AutoModelForSeq2SeqLM` and `AutoTokenizer` load saved SU4MLC folders, and the
`su4mlc-multi-label-classification` task with `transformers.pipeline`. Saved folders also carry the pipeline
(`custom_pipelines`, under "text-classification"): `pipeline(model=folder, trust_remote_code=True)` works with no
task and no import.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from .configuration_su4mlc import SU4MLCConfig
from .label_vocab import LabelVocabulary, UnknownLabelError
from .model_card import build_model_card, push_model_card, save_model_card
from .modeling_su4mlc import SU4MLCDecoderCache, SU4MLCForMultiLabelClassification, SU4MLCPreTrainedModel
# Importing the pipeline module registers its task.
from .pipeline_su4mlc import SU4MLC_PIPELINE_TASK, SU4MLCMultiLabelPipeline
from .tokenization_su4mlc import SU4MLCTokenizer
from .version import __version__

AutoConfig.register(SU4MLCConfig.model_type, SU4MLCConfig, exist_ok=True)
AutoModel.register(SU4MLCConfig, SU4MLCForMultiLabelClassification, exist_ok=True)
AutoModelForSeq2SeqLM.register(SU4MLCConfig, SU4MLCForMultiLabelClassification, exist_ok=True)
AutoTokenizer.register(SU4MLCConfig, tokenizer_class=SU4MLCTokenizer, exist_ok=True)
# Saved folders carry an `auto_map` and the code files, so they also load where this package is not installed
# (`trust_remote_code=True`). The tokenizer is not registered for remote code on purpose: its tokenizer.json
# holds the whole word-level pipeline, so a plain `AutoTokenizer.from_pretrained` loads it without any code.
SU4MLCConfig.register_for_auto_class()
SU4MLCForMultiLabelClassification.register_for_auto_class("AutoModel")

__all__ = [
    "LabelVocabulary",
    "SU4MLC_PIPELINE_TASK",
    "SU4MLCConfig",
    "SU4MLCDecoderCache",
    "SU4MLCForMultiLabelClassification",
    "SU4MLCMultiLabelPipeline",
    "SU4MLCPreTrainedModel",
    "SU4MLCTokenizer",
    "UnknownLabelError",
    "__version__",
    "build_model_card",
    "push_model_card",
    "save_model_card",
]
