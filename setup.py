"""Packaging for su4mlc-hf: SU4MLC multi-label text classification on Hugging Face transformers."""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
VERSION = {}
exec((ROOT / "su4mlc_hf" / "version.py").read_text(), VERSION)

# torch is pinned only from below: a GPU user brings their own CUDA build, and the README's
# set-up installs the CPU wheel before this package so pip never pulls a CUDA build by itself.
INSTALL_REQUIRES = [
    "torch>=2.4",
    "transformers>=5.24,<6",
    "tokenizers>=0.22",
    "datasets>=4.0",
    "evaluate>=0.4.6",
    "accelerate>=1.10",
    "safetensors>=0.6",
    "huggingface_hub>=1.0",
    "scikit-learn>=1.5",
    "joblib>=1.3",  # ngram_fit fits the labels' SVMs in parallel processes
    "numpy>=1.26",
]
EXTRAS = {
    "test": ["pytest>=8", "hypothesis>=6.100"],
    "benchmarks": ["matplotlib>=3.8"],
    "explain": ["matplotlib>=3.8"],  # the attention pictures of `su4mlc_hf.explain` and `run_mlc.py --explain`
}
EXTRAS["dev"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="su4mlc-hf",
    version=VERSION["__version__"],
    description=(
        "SU4MLC (Lin et al., EMNLP 2018): semantic-unit-based dilated convolution for multi-label "
        "text classification, as a Hugging Face transformers model"
    ),
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["su4mlc_hf", "su4mlc_hf.*"]),
    package_data={"su4mlc_hf": ["templates/*.md", "evaluate_metric/*.py"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "License :: OSI Approved :: Apache Software License",
    ],
)
