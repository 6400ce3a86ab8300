"""Text for the synthetic corpus: sentences from public-domain sources, cleaned so that every engine reads them
the same way (what the voice says is exactly the label)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

MIN_WORDS, MAX_WORDS = 5, 25

_ALLOWED_SENTENCE = re.compile(r"[A-Z][A-Za-z ,.;:'?!-]*[.?!]")
_DANGLING_HYPHEN = re.compile(r"(^|\s)-|-($|\s)|--")
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")
_ALL_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")


def normalise_sentence(raw: str) -> str | None:
    """A cleaned sentence of MIN_WORDS..MAX_WORDS plain words, or None when it can't be read aloud
    unambiguously (digits, brackets and symbols are spoken differently by each engine, which would
    make the transcript disagree with the audio)."""
    text = raw.replace("`", "'").replace("\u2019", "'").replace("\u2018", "'")
    text = " ".join(text.split()).strip(" '\"")
    # KJV writes the divine name in capitals, which some engines spell out letter by letter.
    text = _ALL_CAPS_WORD.sub(lambda match: match.group().capitalize(), text)
    if not text or text.startswith("-") or _DANGLING_HYPHEN.search(text):
        return None
    text = text[0].upper() + text[1:]
    if text[-1] not in ".?!":
        text = text.rstrip(",;:") + "."
    if not _ALLOWED_SENTENCE.fullmatch(text) or not MIN_WORDS <= len(text.split()) <= MAX_WORDS:
        return None
    return text


def kjv_sentences() -> list[str]:
    """Sentences of the King James Bible (public domain) from Debian's bible-kjv."""
    if shutil.which("bible") is None:
        logger.warning("bible-kjv is not installed; skipping the King James Bible as a text source")
        return []
    listing = subprocess.run(
        ["bible", "-l0", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    verses = (match.group(1) for match in re.finditer(r"^\s+\d+ (.+)$", listing, re.MULTILINE))
    return [part for verse in verses for part in _SENTENCE_BREAK.split(verse)]


def wordnet_examples(wordnet_dir: Path = Path("/usr/share/wordnet")) -> list[str]:
    """WordNet's quoted usage examples (WordNet 3.0 licence: free use with notice) from wordnet-base."""
    data_files = sorted(wordnet_dir.glob("data.*"))
    if not data_files:
        logger.warning("wordnet-base is not installed; skipping WordNet examples as a text source")
        return []
    examples = []
    for path in data_files:
        for line in path.read_text(encoding="latin-1").splitlines():
            # Lines starting with spaces are the licence header; the gloss follows " | ".
            _, bar, gloss = line.partition(" | ")
            if bar and not line.startswith(" "):
                examples.extend(re.findall(r'"([^"]+)"', gloss))
    return examples


def load_sentences() -> list[str]:
    """Unique normalised sentences from every installed text source, in a stable order."""
    by_key: dict[str, str] = {}
    for raw in [*kjv_sentences(), *wordnet_examples()]:
        sentence = normalise_sentence(raw)
        if sentence is not None:
            # Sentences differing only in case or punctuation count as one, so none leaks across splits.
            by_key.setdefault(_sentence_key(sentence), sentence)
    if not by_key:
        raise RuntimeError("no text source installed; run scripts/install_tts.sh")
    return sorted(by_key.values())


def _sentence_key(sentence: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", sentence.lower()).split())
