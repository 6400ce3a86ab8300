"""Which voices the synthetic corpus uses, by how well whisper-base understands them (issue 13's yardstick for
"sounds like a person"): a voice whose measured WER is over MAX_VOICE_WER is left out.

benchmarks/voice_wer.py measures every voice and writes MEASURED_TABLE, the one record of those measurements;
the planner reads it through usable_voices(). A voice the table does not hold was never measured and is kept.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from audiograft.corpora.engines import Voice
from audiograft.files import write_text_atomically

logger = logging.getLogger(__name__)

MAX_VOICE_WER = 0.30
# Six utterances of a voice hold some 70 words, and their errors come in clumps (one misheard sentence), so a voice's
# own WER swings by ten points or more between draws: judged alone, good voices would be dropped by bad luck and bad
# ones kept. A voice is therefore judged by its own sample only from MIN_VOICE_WORDS words in MIN_VOICE_UTTERANCES
# utterances on (the binomial standard error of a 30% WER is then about 3 points, and no one or two sentences decide),
# and otherwise by the pooled WER of each family it belongs to (voice_families: the 8 to 13 voices sharing an accent or
# a variant pool 50 to 80 utterances), dropped if any is over.
MIN_VOICE_WORDS = 200
MIN_VOICE_UTTERANCES = 12
MEASURED_TABLE = Path(__file__).with_name("voice_wer.json")


@dataclass(frozen=True)
class Measurement:
    """whisper-base on some utterances: reference words and word errors (substitutions, deletions, insertions)."""

    utterances: int
    words: int
    errors: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else 0.0

    def __add__(self, other: Measurement) -> Measurement:
        return Measurement(self.utterances + other.utterances, self.words + other.words, self.errors + other.errors)


NOTHING = Measurement(0, 0, 0)


def voice_families(voice: Voice) -> tuple[str, ...]:
    """The families a voice is pooled in: espeak-ng's accent and its variant (two crossed families), Kokoro's
    accent with its style table or mix, or else the engine."""
    if voice.engine == "espeak":
        accent, _, variant = voice.name.partition("+")
        return f"espeak-{accent}", f"espeak+{variant or 'default'}"
    if voice.engine == "kokoro":
        style, _, accent = voice.name.rpartition("-")
        return (f"kokoro-{accent}-{'mix' if style.startswith('mix') else 'table'}",)
    return (voice.engine,)


def family_measurements(voices: Mapping[Voice, Measurement]) -> dict[str, Measurement]:
    """Each family's measurements pooled over its voices."""
    families: dict[str, Measurement] = defaultdict(lambda: NOTHING)
    for voice, measurement in voices.items():
        for family in voice_families(voice):
            families[family] += measurement
    return dict(sorted(families.items()))


def drop_reason(
    voice: Voice, measured: Mapping[Voice, Measurement], families: Mapping[str, Measurement] | None = None,
    max_wer: float = MAX_VOICE_WER,
) -> str | None:
    """Why the corpus leaves the voice out (its own WER, or a family's, over max_wer), or None to keep it.
    measured holds voices by engine and name (Voice(engine, name)); families is family_measurements(measured)."""
    own = measured.get(Voice(voice.engine, voice.name))
    if own is None:
        return None
    if own.words >= MIN_VOICE_WORDS and own.utterances >= MIN_VOICE_UTTERANCES:
        return f"WER {own.wer:.1%} on {own.words} words" if own.wer > max_wer else None
    families = family_measurements(measured) if families is None else families
    over = [f"{family} WER {families[family].wer:.1%}" for family in voice_families(voice)
            if families[family].wer > max_wer]
    return ", ".join(over) or None


def write_measurements(path: Path, measured: Mapping[Voice, Measurement], command: str) -> Path:
    """The table usable_voices reads: each voice's engine, name and measurement, by voice id."""
    table = {
        "command": command,
        "max_wer": MAX_VOICE_WER,
        "voices": {
            voice.id: {"engine": voice.engine, "name": voice.name, "utterances": m.utterances, "words": m.words,
                       "errors": m.errors, "wer": round(m.wer, 4)}
            for voice, m in sorted(measured.items(), key=lambda item: item[0].id)
        },
    }
    return write_text_atomically(path, json.dumps(table, indent=1) + "\n")


@functools.cache
def read_measurements(path: Path = MEASURED_TABLE) -> dict[Voice, Measurement]:
    """The measured table (empty when there is none), voices by engine and name only (Voice(engine, name)): a voice's
    corpus weight does not change how it sounds."""
    if not path.is_file():
        return {}
    table = json.loads(path.read_text())
    return {
        Voice(row["engine"], row["name"]): Measurement(row["utterances"], row["words"], row["errors"])
        for row in table["voices"].values()
    }


def usable_voices(voices: Iterable[Voice], measured: Mapping[Voice, Measurement] | None = None) -> list[Voice]:
    """The voices the corpus may use: all but those drop_reason leaves out, which are logged in one line. The voices
    kept keep their weights, so an engine that loses voices loses that share of the corpus to the others."""
    measured = read_measurements() if measured is None else measured
    families = family_measurements(measured)
    voices = list(voices)
    reasons = {voice.id: drop_reason(voice, measured, families) for voice in voices}
    dropped = {voice_id: reason for voice_id, reason in reasons.items() if reason}
    unmeasured = [v.id for v in voices if Voice(v.engine, v.name) not in measured]
    if dropped:
        logger.info("leaving out %d voices whisper-base cannot follow (WER over %.0f%%): %s", len(dropped),
                    100 * MAX_VOICE_WER, "; ".join(f"{v} ({r})" for v, r in sorted(dropped.items())))
    if unmeasured:
        logger.info("%d voices were never measured (benchmarks/voice_wer.py) and are kept: %s", len(unmeasured),
                    ", ".join(sorted(unmeasured)))
    return [voice for voice in voices if not reasons[voice.id]]
