"""Text for the synthetic corpus, in several registers (written prose, dialogue, commands, spoken numbers and
names, short phrases, long passages), cleaned so that every engine reads it the same way: what the voice says is
exactly the label.

Each source is listed in TEXT_SOURCES with its register and licence; DEFAULT_MIX says how often the planner draws
each register, WORD_LIMITS how long its texts may be. The LEVERS (scrambled words, everyday English words, quotations,
chatbot conversations) are texts measured against the default sources and read only when asked for; drop_overlapping
keeps any text that shares a run of words with an evaluation set out of training.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import random
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

import audiograft
from audiograft.corpora import everyday
from audiograft.files import atomic_path

logger = logging.getLogger(__name__)

# Words per text, by register. Long passages stop at 70 words: at the slowest rate and highest pitch the planner
# draws (0.85, 1.12), 70 words took 21 s (piper) to 29.5 s (festival ked), inside the encoder's 30 s window.
WORD_LIMITS: dict[str, range] = {
    "written": range(5, 26),
    "dialogue": range(2, 26),
    "commands": range(2, 26),
    "numbers": range(3, 31),
    "short": range(1, 5),
    "long": range(30, 71),
    "scrambled": range(2, 26),
    "quotations": range(2, 26),
}

# How often the planner draws each register (relative weights), split evenly between the register's sources.
# Everyday speech (dialogue, commands, numbers and names, short phrases) takes 60%; written prose (Bible, WordNet)
# stays one register of 20%; long passages take 20%, to teach the model to keep every sentence of a full window.
# The text levers of issue 14 (LEVERS) are not in DEFAULT_SOURCES: they are drawn only from a pool file made for them
# (`audiograft data texts --sources scrambled`), or at their register's weight beside the others in one that holds
# them all.
DEFAULT_MIX: dict[str, float] = {
    "written": 0.2,
    "dialogue": 0.2,
    "commands": 0.15,
    "numbers": 0.15,
    "short": 0.1,
    "long": 0.2,
    "scrambled": 0.2,
    "quotations": 0.2,
}

# The generated registers are drawn this many times (duplicates then merge) with this seed, so the text is
# the same on every machine with the same faker version.
TEXT_SEED = 0
GENERATED_DRAWS = 20_000
_SENTENCE_END = ".?!"
# What a word keeps off its ends when it is drawn alone: punctuation, and the quotes of WordNet's examples.
_WORD_EDGES = _SENTENCE_END + ",;:'\""

_ALLOWED_SENTENCE = re.compile(r"[A-Z][A-Za-z ,.;:'?!-]*[.?!]")
_DANGLING_HYPHEN = re.compile(r"(^|\s)-|-($|\s)|--")
_SENTENCE_BREAK = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")
_ALL_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")
# Song lyrics are left out of the fortune cookies (their rights are the songwriters'), and so are pictures drawn in
# characters and the cookies of other languages.
FORTUNE_FILES_LEFT_OUT = frozenset({"songs-poems", "ascii-art", "translate-me"})
# Texts sharing a run of this many words with held-out transcripts are dropped (drop_overlapping).
OVERLAP_WORDS = 5
# The everyday-words lever draws from this many of wordfreq's most frequent English words (plain words only).
EVERYDAY_VOCABULARY = 30_000
_PLAIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class TextSource:
    """One source of text: its register (a key of WORD_LIMITS and DEFAULT_MIX), its licence, and a loader
    returning raw texts (empty when the package it reads is not installed)."""

    name: str
    register: str
    licence: str
    load: Callable[[], list[str]]


def normalise_sentence(raw: str, words: range = WORD_LIMITS["written"]) -> str | None:
    """A cleaned text of len(words) plain words (one or more sentences), or None when it can't be read aloud
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
    if not _ALLOWED_SENTENCE.fullmatch(text) or len(text.split()) not in words:
        return None
    return text


@functools.cache
def _kjv_chapters() -> tuple[tuple[str, ...], ...]:
    """The verses of each chapter of the King James Bible, from Debian's bible-kjv (empty when not installed)."""
    if shutil.which("bible") is None:
        logger.warning("bible-kjv is not installed; skipping the King James Bible as a text source")
        return ()
    listing = subprocess.run(
        ["bible", "-l0", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    ).stdout
    # A chapter starts with its unindented title ("Genesis 1"); verses are indented and numbered.
    chapters = re.split(r"^\S.*$", listing, flags=re.MULTILINE)
    verses = (re.findall(r"^\s+\d+ (.+)$", chapter, re.MULTILINE) for chapter in chapters)
    return tuple(tuple(chapter) for chapter in verses if chapter)


def kjv_sentences() -> list[str]:
    """Sentences of the King James Bible (public domain) from Debian's bible-kjv."""
    return [part for chapter in _kjv_chapters() for verse in chapter for part in _SENTENCE_BREAK.split(verse)]


def kjv_passages(words: range = WORD_LIMITS["long"]) -> list[str]:
    """Runs of consecutive verses of one chapter of the King James Bible (public domain), each as many whole
    verses as fit in len(words) words: several sentences in one utterance."""
    passages = []
    for chapter in _kjv_chapters():
        run: list[str] = []
        for raw in [*chapter, ""]:
            verse = normalise_sentence(raw, range(1, words.stop)) if raw else None
            if verse is None or sum(len(v.split()) for v in [*run, verse]) >= words.stop:
                if sum(len(v.split()) for v in run) in words:
                    passages.append(" ".join(run))
                run = []
            if verse is not None:
                run.append(verse)
    return passages


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


def fortune_cookies(
    fortune_dir: Path = Path("/usr/share/games/fortunes"), left_out: frozenset[str] = FORTUNE_FILES_LEFT_OUT,
    words: range = WORD_LIMITS["quotations"],
) -> list[str]:
    """Quotations, jokes and sayings of Debian's fortunes (BSD-style licence) with their attributions dropped: each
    cookie whole when it has fewer than words.stop words, else its sentences one by one."""
    cookie_files = sorted(path for path in fortune_dir.glob("*") if path.is_file() and not path.suffix
                          and path.name not in left_out)
    if not cookie_files:
        logger.warning("fortunes is not installed; skipping fortune cookies as a text source")
        return []
    texts = []
    for path in cookie_files:
        for cookie in re.split(r"^%$", path.read_text(encoding="utf-8", errors="replace"), flags=re.MULTILINE):
            text = " ".join(" ".join(_without_attributions(cookie.splitlines())).split())
            texts.extend([text] if len(text.split()) < words.stop else _SENTENCE_BREAK.split(text))
    return texts


def _without_attributions(lines: list[str]) -> list[str]:
    """A cookie's lines without its attributions: a line starting "--" and the indented lines that continue it."""
    kept, in_attribution = [], False
    for line in lines:
        if line.strip().startswith("--"):
            in_attribution = True
        elif not line[:1].isspace():
            in_attribution = False
        if not in_attribution:
            kept.append(line)
    return kept


def word_runs(text: str, length: int = OVERLAP_WORDS) -> set[str]:
    """Every run of length consecutive words of text, compared as _sentence_key compares texts."""
    words = _sentence_key(text).split()
    return {" ".join(words[start:start + length]) for start in range(len(words) - length + 1)}


def drop_overlapping(
    pools: Mapping[str, list[str]], held_out: Iterable[str], length: int = OVERLAP_WORDS
) -> dict[str, list[str]]:
    """The pools without any text sharing a run of length words with a held-out text (an evaluation set's
    transcripts), so that no quotation the model trains on is one it is scored on."""
    held_out_runs = set().union(*(word_runs(text, length) for text in held_out))
    kept = {name: [text for text in pool if held_out_runs.isdisjoint(word_runs(text, length))]
            for name, pool in pools.items()}
    for name, pool in pools.items():
        if len(kept[name]) < len(pool):
            logger.info("%s: %d texts share %d words in a row with the held-out texts; dropped",
                        name, len(pool) - len(kept[name]), length)
    return kept


def _generated(generator: Callable[[int, int], list[str]]) -> Callable[[], list[str]]:
    """The generator's texts at TEXT_SEED and GENERATED_DRAWS (read at call time), made once per process."""
    return lambda: list(_drawn(generator, TEXT_SEED, GENERATED_DRAWS))


@functools.cache
def _drawn(generator: Callable[[int, int], list[str]], seed: int, draws: int) -> tuple[str, ...]:
    return tuple(generator(seed, draws))


def scrambled_texts(
    pools: Mapping[str, Sequence[str]], count: int, seed: int, words: range = WORD_LIMITS["scrambled"]
) -> list[str]:
    """count texts of words drawn at random from the pools' texts, each text len(words) long (uniform), each word
    either a running word of the pools (common words come often) or, as often, a distinct one (rare words come too),
    spelled as it is written inside a sentence ("God", "river").

    Without syntax or topic to lean on, a model must hear each word: the lever against a graft that writes the
    sentence it expects rather than the one said (benchmarks/text_domain.py measured that gap)."""
    spelled = _spellings(pools)
    running = [token.strip(_WORD_EDGES).lower() for pool in pools.values() for text in pool for token in text.split()]
    return _word_sequences(running, sorted(spelled), spelled, count, seed, words)


def everyday_words(
    pools: Mapping[str, Sequence[str]], count: int, seed: int, vocabulary: int = EVERYDAY_VOCABULARY,
    words: range = WORD_LIMITS["scrambled"],
) -> list[str]:
    """count texts of English words drawn as scrambled_texts draws them, from wordfreq's vocabulary most frequent
    plain words instead of the pools' (empty when wordfreq is not installed): half of the words by how often English
    uses them (subtitles, speech, the web, books), half uniform over the list. A word is spelled as the pools write it
    inside a sentence ("I", "Monday"), else in lower case as wordfreq lists it.

    The default sources' words are those of the Bible, WordNet and our templates; everyday speech uses many they
    lack (issue 14: 12% of the real English dev's words never occur in the training text, most of them two)."""
    try:
        import wordfreq
    except ImportError:
        logger.warning("wordfreq is not installed; skipping everyday English words as a text source")
        return []
    frequencies = {word: frequency for word, frequency in wordfreq.get_frequency_dict("en").items()
                   if _PLAIN_WORD.fullmatch(word)}
    ranked = sorted(frequencies, key=frequencies.__getitem__, reverse=True)[:vocabulary]
    # scrambled_texts draws "by how often" from a list of running words: each word here as often, relative to the
    # rarest word kept, as wordfreq counts it.
    rarest = frequencies[ranked[-1]]
    running = [word for word in ranked for _ in range(round(frequencies[word] / rarest))]
    in_sentences = _spellings(pools)
    spelled = {word: in_sentences.get(word, word) for word in ranked}
    return _word_sequences(running, ranked, spelled, count, seed, words)


def _spellings(pools: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each word of the pools (lower case) as it is most often written inside a sentence; a word seen only at a
    sentence's start, where it is capitalised whatever it is, in lower case."""
    spellings: dict[str, Counter[str]] = {}
    for pool in pools.values():
        for text in pool:
            starts_sentence = True
            for token in text.split():
                word = token.strip(_WORD_EDGES)
                if word:
                    counts = spellings.setdefault(word.lower(), Counter())
                    if starts_sentence:
                        counts.setdefault(word.lower(), 0)
                    else:
                        counts[word] += 1
                starts_sentence = token[-1] in _SENTENCE_END
    return {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}


def _word_sequences(
    running: Sequence[str], distinct: Sequence[str], spelled: Mapping[str, str], count: int, seed: int, words: range
) -> list[str]:
    """count texts of len(words) words (uniform), each word a draw from running or, as often, from distinct."""
    draw = random.Random(seed)
    drawn = []
    for _ in range(count):
        length = draw.randrange(words.start, words.stop)
        picked = [draw.choice(running) if draw.random() < 0.5 else draw.choice(distinct) for _ in range(length)]
        drawn.append(" ".join(spelled[key] for key in picked if key))
    return drawn


def chatbot_conversations(corpus_dir: Path | None = None) -> list[str]:
    """The lines of chatterbot-corpus's English conversations (BSD-3-Clause): greetings, questions and replies on
    everyday topics, written as people type them in a chat (empty when the package is not installed)."""
    if corpus_dir is None:
        try:
            import chatterbot_corpus
        except ImportError:
            logger.warning("chatterbot-corpus is not installed; skipping chatbot conversations as a text source")
            return []
        corpus_dir = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    lines = []
    for path in sorted(corpus_dir.glob("*.yml")):
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations") or []:
            lines.extend(line for line in conversation if isinstance(line, str))
    return lines


_OURS = "Apache-2.0 (our templates and vocabulary)"
TEXT_SOURCES: tuple[TextSource, ...] = (
    TextSource("kjv", "written", "public domain (King James Bible, Debian bible-kjv)", kjv_sentences),
    TextSource("wordnet", "written", "WordNet 3.0 licence (permissive, with notice; Debian wordnet-base)",
               wordnet_examples),
    TextSource("dialogue", "dialogue", f"{_OURS}; names from faker (MIT)", _generated(everyday.dialogue)),
    TextSource("commands", "commands", f"{_OURS}; names from faker (MIT)", _generated(everyday.commands)),
    TextSource("numbers", "numbers", f"{_OURS}; faker (MIT), numbers spelled by inflect (MIT)",
               _generated(everyday.numbers)),
    TextSource("short_phrases", "short", f"{_OURS}; names from faker (MIT)", _generated(everyday.short_phrases)),
    TextSource("short_values", "short", f"{_OURS}; faker (MIT), inflect (MIT)", _generated(everyday.short_values)),
    TextSource("kjv_passages", "long", "public domain (King James Bible, Debian bible-kjv)", kjv_passages),
    TextSource("messages", "long", f"{_OURS}; faker (MIT), inflect (MIT)", _generated(everyday.messages)),
    TextSource("scrambled", "scrambled", "words of the default sources (their licences)",
               lambda: scrambled_texts(load_texts(), 2 * GENERATED_DRAWS, TEXT_SEED)),
    TextSource("everyday_words", "scrambled",
               "wordfreq's English word list: CC BY-SA 4.0, from SUBTLEX (Brysbaert et al.), OpenSubtitles 2018, "
               "Wikipedia, ParaCrawl, the Leeds Internet Corpus and Google Books Ngrams (credited in wordfreq's "
               "README); wordfreq's code Apache-2.0",
               lambda: everyday_words(load_texts(), 2 * GENERATED_DRAWS, TEXT_SEED)),
    TextSource("fortunes", "quotations", "BSD-style (Debian fortunes, fortune-mod); song lyrics left out",
               fortune_cookies),
    TextSource("conversations", "dialogue", "BSD-3-Clause (chatterbot-corpus, Gunther Cox)", chatbot_conversations),
)
# Text levers (issue 14), read only when asked for (`audiograft data texts --sources`).
LEVERS = frozenset({"scrambled", "everyday_words", "fortunes", "conversations"})
# The sources of the shipped model's corpus: what `audiograft data texts` writes unless told which.
DEFAULT_SOURCES = tuple(source for source in TEXT_SOURCES if source.name not in LEVERS)


def load_texts(
    sources: tuple[TextSource, ...] = DEFAULT_SOURCES, mix: Mapping[str, float] = DEFAULT_MIX
) -> dict[str, list[str]]:
    """Unique normalised texts of each source whose register the mix draws, by source name, in a stable order.
    Sources that are not installed are left out. A text that two sources share is kept once, by the first."""
    texts: dict[str, list[str]] = {}
    seen: set[str] = set()
    for source in sources:
        if mix.get(source.register, 0) <= 0:
            continue
        kept = {}
        for raw in source.load():
            text = normalise_sentence(raw, WORD_LIMITS[source.register])
            # Texts differing only in case or punctuation count as one, so none leaks across splits.
            if text is not None and (key := _sentence_key(text)) not in seen:
                seen.add(key)
                kept[key] = text
        logger.info("%s (%s): %d distinct texts", source.name, source.register, len(kept))
        if kept:
            texts[source.name] = sorted(kept.values())
    if not texts:
        raise RuntimeError("no text source installed; run scripts/install_tts.sh")
    return texts


def write_text_pools(path: Path, texts: Mapping[str, list[str]], sources: tuple[TextSource, ...] = TEXT_SOURCES) -> Path:
    """The text pools as load_texts returned them (source name -> texts), gzipped JSON with the audiograft version and
    each source's licence, so that a machine without the sources plans the same corpus (read_text_pools)."""
    licences = {source.name: source.licence for source in sources if source.name in texts}
    document = {"audiograft": audiograft.__version__, "licences": licences, "texts": dict(texts)}
    with atomic_path(path) as temporary, gzip.open(temporary, "wt", encoding="utf-8") as out:
        json.dump(document, out)
    return path


def read_text_pools(path: Path) -> dict[str, list[str]]:
    """The text pools write_text_pools wrote; ValueError naming the file when it holds none."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            document = json.load(lines)
    except (OSError, EOFError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a text pool file written by `audiograft data texts` ({error})") from None
    texts = document.get("texts") if isinstance(document, dict) else None
    if not isinstance(texts, dict) or not texts or not all(
        isinstance(pool, list) and all(isinstance(text, str) for text in pool) for pool in texts.values()
    ):
        raise ValueError(f"{path}: holds no text pools (expected {{'texts': {{source: [text, ...]}}}})")
    return texts


def named_sources(names: Iterable[str], sources: tuple[TextSource, ...] = TEXT_SOURCES) -> tuple[TextSource, ...]:
    """The sources of these names, in the order named; ValueError naming every unknown one."""
    by_name = {source.name: source for source in sources}
    names = list(names)
    unknown = sorted(set(names) - by_name.keys())
    if unknown:
        raise ValueError(f"unknown text sources {unknown}; known: {list(by_name)}")
    return tuple(by_name[name] for name in names)


def source_weights(
    names: Iterable[str], sources: tuple[TextSource, ...] = TEXT_SOURCES, mix: Mapping[str, float] = DEFAULT_MIX
) -> dict[str, float]:
    """How often to draw each of the named sources: its register's share of the mix, split evenly between the
    register's sources present (so a template with many variants does not crowd out a short fixed list)."""
    present = {source.name for source in named_sources(names, sources)}
    register_of = {source.name: source.register for source in sources if source.name in present}
    sizes = Counter(register_of.values())
    return {name: mix.get(register, 0) / sizes[register] for name, register in register_of.items()}


def _sentence_key(sentence: str) -> str:
    """What two texts must share to count as the same: their words, ignoring case and punctuation."""
    return " ".join(re.sub(r"[^a-z' ]", " ", sentence.lower()).split())
