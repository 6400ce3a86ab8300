"""audiograft: graft a pretrained audio encoder onto a pretrained LLM so that the LLM hears.

The package is laid out by layer, each depending only on those listed before it:
    audio/      loading audio files, voice activity, waveform augmentation
    manifest    the JSONL record of clips that corpora write and training and evaluation read
    presets/    the built-in pretrained parts and the shipped default model
    modeling/   the graft itself: config, encoders, projectors, LLMs, the processor, GraftModel
    inference/  the Transcriber: any length, decoding guards, word times and confidence, transcripts
    evaluation/ metrics (nothing that runs a model), the runner, the HTML report
    training/   the training loop, its data, the encoder cache, the word aligner's training
    serving/    the OpenAI-compatible server and its batching queue
    corpora/    the synthetic corpus builder, the real-speech dev set, the non-speech set
    bench/      the speed harness and the published architectures
    cli         the `audiograft` command

`import audiograft` loads nothing heavy: GraftConfig and GraftModel are imported on first use.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
__all__ = ["GraftConfig", "GraftModel", "GraftProcessor", "LoraSettings"]

_EXPORTS = {
    "GraftConfig": "audiograft.modeling.config",
    "LoraSettings": "audiograft.modeling.config",
    "GraftModel": "audiograft.modeling.model",
    "GraftProcessor": "audiograft.modeling.processor",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'audiograft' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
