"""Real human speech in Spanish, French, Italian and Russian from Debian's Asterisk telephony prompts.

Each voice is one Debian package of prompts read by one voice talent:

    language  train (transcripts of its own)          dev (another speaker)
    es        asterisk-core-sounds-es (Allison Smith)  asterisk-prompt-es-co (July E. Jiménez)
    fr        asterisk-core-sounds-fr (June Wallack)   asterisk-prompt-fr-armelle (Armelle Desjardins)
    it        asterisk-core-sounds-it (Carlo Flora)    asterisk-prompt-it-menardi (Menardi / Dal Zot)
    ru        asterisk-core-sounds-ru (ivrvoice.ru)    none: Russian has one speaker, all of it is train

The core-sounds packages ship their script (`core-sounds-LANG.txt`, lines `name: text`); the three prompt packages
ship no text, but name their files as the core prompts are named. Their transcripts are the core script's, "borrowed":
a prompt is kept only where its speech lasts as long, relative to the core voice's reading of the same name, as the
voice's prompts do in the median (`BORROWED_TOLERANCE`), which drops prompts translated with other words. That is not
enough for es-co and Armelle, recorded from other translations (whisper-base heard "S'il vous plaît, entrez le code de
la conférence" where the script says "Veuillez composer le code d'accès de la conférence"; median CER 0.37 and 0.57
against the script on the prompts the length check kept, 0.03-0.04 on the core voices): of those two only the closed
vocabulary (`CLOSED_VOCABULARY`: digits, letters, spelling alphabet) is kept. Menardi read Carlo's script (median CER
0.12 on kept prompts), so all of it is kept. The dev split measures other voices on the same prompt texts, not unseen
sentences.

English is never read: the telephony prompts in English are held out for evaluation, so every package name and
language is checked against the allow-list `LANGUAGES` before anything is fetched, unpacked or read.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import re
import shutil
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

from audiograft.audio.io import (
    SAMPLE_RATE,
    AudioError,
    checked_waveform,
    load_audio,
    write_audio,
)
from audiograft.corpora.packages import download_deb, unpack_deb
from audiograft.files import write_text_atomically
from audiograft.manifest import Utterance, write_manifest

logger = logging.getLogger(__name__)

LANGUAGES = ("es", "fr", "it", "ru")
SOUNDS = Path("usr/share/asterisk/sounds")
# A borrowed transcript is kept where the prompt's speech lasts within this share of the voice's median ratio to the
# core voice's reading: the same words read by two people differ by less; another translation usually by more.
BORROWED_TOLERANCE = 0.25
# Frames quieter than this below the clip's loudest frame are the silence around a prompt.
SILENCE_BELOW_PEAK_DB = 35.0


class RealSpeechError(ValueError):
    """A request the builder refuses (English, an unknown language) or a package it cannot read."""


@dataclass(frozen=True)
class Source:
    """One Debian package holding a voice's prompts in one format."""

    package: str
    sounds_dir: str  # under usr/share/asterisk/sounds/
    format: str  # "g722" (16 kHz), "gsm" (8 kHz GSM 6.10) or "wav"


@dataclass(frozen=True)
class Voice:
    speaker: str
    language: str
    split: str
    sources: tuple[Source, ...]  # in order of preference: the first one present and decodable is used
    own_transcripts: bool  # False: the core script of its language, checked against the core voice's readings
    licence: str
    # Borrowed transcripts: the prompt names (prefixes) whose words the voice shares with the core script; None: all.
    shared_prompts: tuple[str, ...] | None = None


def _core(language: str, speaker: str, sounds_dir: str, split: str, licence: str) -> Voice:
    package = f"asterisk-core-sounds-{language}"
    return Voice(speaker, language, split, (Source(f"{package}-g722", sounds_dir, "g722"),
                                            Source(f"{package}-wav", sounds_dir, "wav")), True, licence)


# Numbers, months, days, letters and the spelling alphabet are the same words in any translation of the prompts.
CLOSED_VOCABULARY = ("digits/", "letters/", "phonetic/")

VOICES = (
    _core("es", "core-es-allison", "es_MX_f_Allison", "train", "CC-BY-SA-3.0 (Allison Smith, Digium)"),
    Voice("es-co-july", "es", "dev", (Source("asterisk-prompt-es-co", "es", "gsm"),), False,
          "GPL-2 (Avatar Ltda., voice of July E. Jiménez)", CLOSED_VOCABULARY),
    _core("fr", "core-fr-june", "fr_CA_f_June", "train", "CC-BY-SA-3.0 (June Wallack; translated by Clod Patry, "
          "Kristopher Lalletti, June Wallack)"),
    Voice("fr-armelle", "fr", "dev", (Source("asterisk-prompt-fr-armelle", "fr", "gsm"),), False,
          "BSD-style, keep the copyright notice (Michel Gutierrez 2006, voice of Armelle Desjardins)",
          CLOSED_VOCABULARY),
    _core("it", "core-it-carlo", "it_IT_m_Carlo", "train", "CC-BY-3.0 (Carlo Flora; translated by Silvia Petrin)"),
    Voice("it-menardi", "it", "dev", (Source("asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi", "wav"),), False,
          "CC-BY-SA-3.0 Italy (Marco Menardi and Paola Dal Zot; attribution must name them and "
          "http://www.voip.ammdomus.it visibly to the end user)"),
    _core("ru", "core-ru-ivrvoice", "ru_RU_f_IvrvoiceRU", "train", "CC-BY-3.0 (Maxim Topal, ivrvoice.ru)"),
)


def transcript_package(language: str) -> str:
    return f"asterisk-core-sounds-{language}"


def check_language(language: str) -> str:
    """The language if it is on the allow-list; English, and anything else, is refused."""
    if language not in LANGUAGES:
        raise RealSpeechError(f"language {language!r} is not one the real-speech builder reads "
                              f"(allowed: {', '.join(LANGUAGES)}; English prompts are held out for evaluation)")
    return language


def check_package(package: str) -> str:
    """The package name if it belongs to an allowed language; an English package is refused by name."""
    if re.search(r"-en(-|$)", package):
        raise RealSpeechError(f"{package}: English telephony prompts are held out for evaluation and never read")
    if not any(package == s.package for v in VOICES for s in v.sources) and package not in {
        transcript_package(language) for language in LANGUAGES
    }:
        raise RealSpeechError(f"{package}: not one of the real-speech packages")
    return package


def decodable_formats() -> set[str]:
    """libsndfile reads the wav prompts; G.722 and GSM need PyAV (FFmpeg's decoders, the `real` extra)."""
    return {"wav"} | ({"g722", "gsm"} if importlib.util.find_spec("av") else set())


def voices_for(languages: Iterable[str]) -> list[Voice]:
    wanted = {check_language(language) for language in languages}
    return [voice for voice in VOICES if voice.language in wanted]


# --- fetching and unpacking -------------------------------------------------------------------------------------


def fetch_packages(cache_dir: str | Path, languages: Iterable[str] = LANGUAGES) -> dict[str, Path]:
    """The .deb of each transcript package and, per voice, of its first decodable source, from `cache_dir` where it
    lies there already, else through `apt-get download`; a package neither gives is logged and left out."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    formats = decodable_formats()
    languages = sorted({check_language(language) for language in languages})
    debs = {}
    for package in [transcript_package(language) for language in languages]:
        if deb := _obtain(package, cache_dir):
            debs[package] = deb
    for voice in voices_for(languages):
        for source in voice.sources:
            if source.format not in formats:
                logger.warning("%s: %s prompts need PyAV (pip install 'audiograft[real]'); trying the next format",
                               source.package, source.format)
            elif deb := _obtain(source.package, cache_dir):
                debs[source.package] = deb
                break
        else:
            logger.warning("%s: no package of its prompts could be had in a decodable format; voice skipped",
                           voice.speaker)
    return debs


def _obtain(package: str, cache_dir: Path) -> Path | None:
    check_package(package)
    return download_deb(package, cache_dir)


def unpack_packages(debs: dict[str, Path], root: str | Path) -> Path:
    """Each package unpacked into root/PACKAGE/, the layout `build_real_speech` reads."""
    root = Path(root)
    for package, deb in debs.items():
        unpack_deb(deb, root / check_package(package))
    return root


# --- transcripts ------------------------------------------------------------------------------------------------


_NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_SCRIPT_LINE = re.compile(r"^([\w/.-]+):\s*(.*)$")
# A "?" before more words of the sentence stands for an accented letter lost in the file's encoding ("pu? essere").
_LOST_LETTER = re.compile(r"\?(?=\w|\s+[a-zà-ÿ])")


def read_script(path: str | Path) -> dict[str, str]:
    """A core-sounds script (`name: text` lines, `;` comments; gzipped or not) as {prompt name: raw text}; a name
    given two different texts is ambiguous and left out."""
    path = Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    texts: dict[str, str] = {}
    conflicting = set()
    for line in raw.decode("utf-8-sig").splitlines():
        match = _SCRIPT_LINE.match(line.strip())
        if not match or line.startswith(";"):
            continue
        name, text = match.groups()
        if name in texts and texts[name] != text:
            conflicting.add(name)
        texts.setdefault(name, text)
    for name in conflicting:
        logger.warning("%s: %r has two different texts; left out", path, name)
        del texts[name]
    return texts


def clean_transcript(text: str) -> str | None:
    """The words spoken, or None where they cannot be known.

    Bracketed notes ("[ascending tones]", "(beep)", "<beep ascending>", "a [@]") are dropped where they open or close
    the text; one between words may or may not be read out ("Sus saludos [temporales] estan..."), so None. So is a
    text with letters lost to its encoding, and one with nothing left.
    """
    worded = [part for part in _NOTE.split(" ".join(text.split())) if any(c.isalnum() for c in part)]
    if len(worded) != 1:
        return None  # nothing but notes, or a note between words
    text = " ".join(worded[0].split())
    if text.count('"') % 2:
        text = text.replace('"', "")
    return None if _LOST_LETTER.search(text) else text


# --- decoding ---------------------------------------------------------------------------------------------------


def decode_prompt(path: str | Path, format: str) -> np.ndarray:
    """A prompt file as a 16 kHz mono float32 waveform; raw G.722 and GSM files through PyAV."""
    path = Path(path)
    if format == "wav":
        return load_audio(path)
    import av  # optional: the `real` extra

    try:
        with av.open(str(path), format=format) as container:
            stream = container.streams.audio[0]
            frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
            rate = stream.rate
    except (av.error.FFmpegError, IndexError) as error:
        raise AudioError(f"{path}: not readable as {format} audio ({error})") from error
    if not frames:
        raise AudioError(f"{path}: contains no samples")
    waveform = np.concatenate(frames).astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        waveform = soxr.resample(waveform, rate, SAMPLE_RATE, quality="HQ")
    return checked_waveform(waveform, str(path))


def speech_seconds(waveform: np.ndarray, frame_seconds: float = 0.02) -> float:
    """From the first to the last frame within SILENCE_BELOW_PEAK_DB of the loudest: the prompt without the silence
    each recording session left around it differently."""
    size = int(frame_seconds * SAMPLE_RATE)
    frames = waveform[: waveform.size // size * size].reshape(-1, size)
    if frames.size == 0:
        return 0.0
    level = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level >= level.max() - SILENCE_BELOW_PEAK_DB)
    return (loud[-1] - loud[0] + 1) * frame_seconds


# --- building ---------------------------------------------------------------------------------------------------


@dataclass
class RealSpeechSummary:
    utterances: Counter = field(default_factory=Counter)  # by (language, speaker, split)
    seconds: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # by (speaker, reason)
    sources: dict[str, str] = field(default_factory=dict)  # speaker -> "package (format)"


@dataclass
class _Prompt:
    name: str
    text: str
    waveform: np.ndarray
    speech: float


def build_real_speech(
    out_dir: str | Path,
    packages_root: str | Path,
    languages: Sequence[str] = LANGUAGES,
    max_seconds: float = 30.0,
) -> RealSpeechSummary:
    """Write OUT/audio/SPEAKER/*.flac (16 kHz), OUT/train.jsonl, OUT/dev.jsonl, OUT/manifest.jsonl (both) and
    OUT/LICENCES/ from packages unpacked under packages_root/PACKAGE/ (`unpack_packages`).

    Each record carries `language`, `package` and `prompt` (the file's name in the package), and `transcript`:
    "own" or "borrowed" (see the module's doc). Prompts without text, with an uncertain text, failing the borrowed
    check, unreadable or longer than `max_seconds` (the encoder's 30 s window by default) are left out and counted.
    """
    out_dir, root = Path(out_dir), Path(packages_root)
    formats = decodable_formats()
    summary = RealSpeechSummary()
    utterances: list[Utterance] = []
    used_packages: dict[str, str] = {}
    for language in sorted({check_language(language) for language in languages}):
        script_path = _script_path(root, language)
        if script_path is None:
            logger.warning("%s: no core-sounds-%s.txt under %s; language skipped", language, language, root)
            continue
        script = {name: clean_transcript(text) for name, text in read_script(script_path).items()}
        used_packages[transcript_package(language)] = "transcripts"
        core_speech: dict[str, float] = {}
        for voice in sorted(voices_for([language]), key=lambda v: not v.own_transcripts):
            source = next((s for s in voice.sources if s.format in formats and (root / s.package / SOUNDS /
                           s.sounds_dir).is_dir()), None)
            if source is None:
                logger.warning("%s: none of %s unpacked under %s in a decodable format (%s); voice skipped",
                               voice.speaker, [s.package for s in voice.sources], root, ", ".join(sorted(formats)))
                continue
            prompts = _read_voice(root, voice, source, script, max_seconds, summary)
            if voice.own_transcripts:
                core_speech = {p.name: p.speech for p in prompts}
            else:
                prompts = _checked_borrowed(voice, prompts, core_speech, summary)
            summary.sources[voice.speaker] = f"{source.package} ({source.format})"
            used_packages[source.package] = voice.licence
            for prompt in prompts:
                utterances.append(_write_clip(out_dir, voice, source, prompt))
                key = (language, voice.speaker, voice.split)
                summary.utterances[key] += 1
                summary.seconds[key] += utterances[-1].duration
    write_manifest(out_dir / "manifest.jsonl", utterances)
    for split in ("train", "dev"):
        write_manifest(out_dir / f"{split}.jsonl", [u for u in utterances if u.split == split])
    _write_licences(out_dir / "LICENCES", root, used_packages)
    return summary


def _script_path(root: Path, language: str) -> Path | None:
    doc = root / transcript_package(language) / "usr/share/doc" / transcript_package(language)
    return next((p for p in (doc / f"core-sounds-{language}.txt.gz", doc / f"core-sounds-{language}.txt")
                 if p.is_file()), None)


def _read_voice(root: Path, voice: Voice, source: Source, script: dict[str, str | None], max_seconds: float,
                summary: RealSpeechSummary) -> list[_Prompt]:
    directory = root / source.package / SOUNDS / source.sounds_dir
    prompts = []
    for path in sorted(directory.rglob(f"*.{source.format}")):
        if path.is_symlink():
            continue
        name = path.relative_to(directory).with_suffix("").as_posix()
        if name not in script:
            summary.skipped[voice.speaker, "no transcript"] += 1
            continue
        if script[name] is None:
            summary.skipped[voice.speaker, "no usable text"] += 1
            continue
        try:
            waveform = decode_prompt(path, source.format)
        except AudioError as error:
            logger.warning("%s", error)
            summary.skipped[voice.speaker, "unreadable"] += 1
            continue
        if waveform.size > max_seconds * SAMPLE_RATE:
            summary.skipped[voice.speaker, f"over {max_seconds:g} s"] += 1
            continue
        prompts.append(_Prompt(name, script[name], waveform, speech_seconds(waveform)))
    return prompts


def _checked_borrowed(voice: Voice, prompts: list[_Prompt], core_speech: dict[str, float],
                      summary: RealSpeechSummary) -> list[_Prompt]:
    if voice.shared_prompts is not None:
        shared = [p for p in prompts if p.name.startswith(voice.shared_prompts)]
        summary.skipped[voice.speaker, "another translation's prompt"] += len(prompts) - len(shared)
        prompts = shared
    ratios = {p.name: p.speech / core_speech[p.name] for p in prompts if core_speech.get(p.name, 0) > 0}
    summary.skipped[voice.speaker, "no core reading to check against"] += len(prompts) - len(ratios)
    if not ratios:
        return []
    median = statistics.median(ratios.values())
    kept = [p for p in prompts if p.name in ratios and abs(ratios[p.name] / median - 1) <= BORROWED_TOLERANCE]
    summary.skipped[voice.speaker, "borrowed text failed the length check"] += len(ratios) - len(kept)
    return kept


def _write_clip(out_dir: Path, voice: Voice, source: Source, prompt: _Prompt) -> Utterance:
    audio = write_audio(out_dir / "audio" / voice.speaker / f"{prompt.name.replace('/', '--')}.flac", prompt.waveform)
    return Utterance(audio, prompt.text, round(prompt.waveform.size / SAMPLE_RATE, 3), None, voice.speaker,
                     voice.split, {"language": voice.language, "package": source.package, "prompt": prompt.name,
                                   "transcript": "own" if voice.own_transcripts else "borrowed"})


def _write_licences(directory: Path, root: Path, packages: dict[str, str]) -> None:
    """LICENCES/PACKAGE.copyright (each package's Debian copyright file) and LICENCES/README.md (a summary)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["# Licences of the real-speech clips", "",
             "Each package's full Debian copyright file lies beside this one as PACKAGE.copyright.", "",
             "| package | licence |", "| --- | --- |"]
    for package, licence in sorted(packages.items()):
        copyright_file = root / package / "usr/share/doc" / package / "copyright"
        if copyright_file.is_file():
            shutil.copyfile(copyright_file, directory / f"{package}.copyright")
        else:
            logger.warning("%s: no copyright file at %s", package, copyright_file)
        lines.append(f"| {package} | {licence if licence != 'transcripts' else _script_licence(package)} |")
    write_text_atomically(directory / "README.md", "\n".join(lines) + "\n")


def _script_licence(package: str) -> str:
    language = package.rsplit("-", 1)[-1]
    voice = next(v for v in VOICES if v.language == language and v.own_transcripts)
    return f"transcripts (core-sounds-{language}.txt): as the voice, {voice.licence}"


def summary_table(summary: RealSpeechSummary) -> list[str]:
    """One line per (language, speaker, split): utterances and hours; then the totals per language and split."""
    totals: Counter = Counter()
    total_seconds: Counter = Counter()
    lines = []
    for (language, speaker, split), count in sorted(summary.utterances.items()):
        seconds = summary.seconds[language, speaker, split]
        lines.append(f"{language} {speaker:18} {split:5} {count:5d} utterances {seconds / 3600:.3f} h")
        totals[language, split] += count
        total_seconds[language, split] += seconds
    lines += [f"{language} {'all':18} {split:5} {count:5d} utterances {total_seconds[language, split] / 3600:.3f} h"
              for (language, split), count in sorted(totals.items())]
    return lines
