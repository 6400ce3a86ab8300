"""Which voices the corpus keeps, by whisper-base's measured WER."""

import json
import logging

import pytest

from audiograft.corpora import voice_quality
from audiograft.corpora.engines import Voice
from audiograft.corpora.voice_quality import (
    MIN_VOICE_WORDS,
    Measurement,
    drop_reason,
    family_measurements,
    read_measurements,
    usable_voices,
    voice_families,
    write_measurements,
)


def test_voice_families_split_espeak_by_accent_and_variant_and_kokoro_by_accent_and_kind():
    assert voice_families(Voice("espeak", "en-029+f3")) == ("espeak-en-029", "espeak+f3")
    assert voice_families(Voice("espeak", "en-gb-x-rp")) == ("espeak-en-gb-x-rp", "espeak+default")
    assert voice_families(Voice("kokoro", "mix07-gb")) == ("kokoro-gb-mix",)
    assert voice_families(Voice("kokoro", "jf_alpha-us")) == ("kokoro-us-table",)
    assert voice_families(Voice("flite", "kal16")) == ("flite",)


def test_family_measurements_pool_errors_over_words():
    measured = {Voice("espeak", "en-us+f1"): Measurement(6, 60, 6), Voice("espeak", "en-us+m1"): Measurement(6, 40, 24)}
    families = family_measurements(measured)
    assert families["espeak-en-us"] == Measurement(12, 100, 30)
    assert families["espeak+f1"].wer == pytest.approx(0.1)


def test_a_small_sample_is_judged_by_its_families_and_a_large_one_by_itself():
    few = MIN_VOICE_WORDS // 4
    bad_accent = {Voice("espeak", f"en-029+{v}"): Measurement(6, few, few // 2) for v in ("f1", "m1")}
    good_accent = {Voice("espeak", f"en-us+{v}"): Measurement(6, 3 * few, 0) for v in ("f1", "m1")}
    # A voice that alone misses half its words, in families that pool below the limit.
    unlucky = {Voice("espeak", "en-gb+f1"): Measurement(6, few, few // 2)}
    large = {Voice("flite", "kal16"): Measurement(20, MIN_VOICE_WORDS, MIN_VOICE_WORDS // 2),
             Voice("flite", "slt"): Measurement(20, MIN_VOICE_WORDS, 0)}
    measured = bad_accent | good_accent | unlucky | large | {Voice("espeak", "en-gb+m1"): Measurement(6, 9 * few, 0)}
    assert "espeak-en-029" in drop_reason(Voice("espeak", "en-029+m1"), measured)
    assert drop_reason(Voice("espeak", "en-us+m1"), measured) is None
    assert drop_reason(Voice("espeak", "en-gb+f1"), measured) is None
    # flite pools 25% but kal16 alone, on a large enough sample, is over the limit.
    assert "on 200 words" in drop_reason(Voice("flite", "kal16"), measured)
    assert drop_reason(Voice("flite", "slt"), measured) is None
    assert drop_reason(Voice("flite", "awb"), measured) is None  # never measured
    # Many words in few utterances: a sentence or two decide, so the families judge.
    few_utterances = {Voice("pico", "en-GB"): Measurement(6, 2 * MIN_VOICE_WORDS, 0),
                      Voice("pico", "en-US"): Measurement(6, 2 * MIN_VOICE_WORDS, 2 * MIN_VOICE_WORDS)}
    assert drop_reason(Voice("pico", "en-GB"), few_utterances) == "pico WER 50.0%"


def test_usable_voices_drop_by_engine_and_name_keep_unmeasured_ones_and_log_once(caplog):
    measured = {Voice("pico", "en-GB"): Measurement(20, MIN_VOICE_WORDS, MIN_VOICE_WORDS),
                Voice("pico", "en-US"): Measurement(20, MIN_VOICE_WORDS, 0)}
    voices = [Voice("pico", "en-GB", 2.0), Voice("pico", "en-US", 2.0), Voice("piper", "joe")]
    with caplog.at_level(logging.INFO, logger=voice_quality.__name__):
        assert usable_voices(voices, measured) == voices[1:]
    dropped = [r.message for r in caplog.records if "leaving out" in r.message]
    assert len(dropped) == 1 and "pico-en-GB" in dropped[0]
    assert any("piper-joe" in r.message and "never measured" in r.message for r in caplog.records)


def test_the_measured_table_reads_back_as_written(tmp_path):
    measured = {Voice("pico", "en-GB"): Measurement(20, 250, 30), Voice("espeak", "en+m1"): Measurement(6, 70, 7)}
    path = write_measurements(tmp_path / "voice_wer.json", measured, "python benchmarks/voice_wer.py score x")
    assert read_measurements(path) == measured
    assert json.loads(path.read_text())["voices"]["pico-en-GB"]["wer"] == 0.12
    assert read_measurements(tmp_path / "none.json") == {}
