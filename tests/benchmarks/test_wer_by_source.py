"""benchmarks/wer_by_source.py: corpus WER per source of a mixed evaluation set."""

import pytest
from conftest import load_script


def scored(reference: str, hypothesis: str) -> dict:
    return {"reference_normalized": reference, "hypothesis_normalized": hypothesis}


def test_wer_by_group_scores_each_source_as_one_corpus_and_leaves_empty_references_out():
    wer_by_group = load_script("benchmarks/wer_by_source.py").wer_by_group
    utterances = [scored("montreal forced aligner", "mortal force aligner"), scored("a b c d", "a b c d"),
                  scored("m f a is like putty", "m f a is like putty"), scored("", "noise")]
    rows = wer_by_group(["mfa", "librivox", "mfa", "mfa"], utterances)
    # Corpus WER, not the mean of clip WERs: 2 errors over the 3 + 6 words of MFA's two clips.
    assert rows == {"librivox": {"wer": 0.0, "clips": 1, "words": 4}, "mfa": {"wer": 2 / 9, "clips": 2, "words": 9}}
    with pytest.raises(ValueError, match="not the same set"):
        wer_by_group(["mfa"], utterances)
