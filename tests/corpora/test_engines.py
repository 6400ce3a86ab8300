"""The TTS engines' helpers."""

from audiograft.corpora.engines import align_words
from audiograft.manifest import Word


def test_align_words_splits_a_merged_phoneme_group_at_the_phoneme_boundary():
    # "in the" spoken as one group "ɪnðə", as espeak-ng phonemises it; Piper times stress marks.
    timed = [("ɪ", 0.0, 0.1), ("n", 0.1, 0.2), ("ð", 0.2, 0.3), ("ə", 0.3, 0.4), (" ", 0.4, 0.45)]
    timed += [("ˈ", 0.45, 0.5), ("ɛnd", 0.5, 0.9)]
    words = align_words(["In", "the", "end."], ["ˈɪn", "ðə", "ˈɛnd"], timed)
    assert words == [Word("In", 0.0, 0.2), Word("the", 0.2, 0.4), Word("end", 0.45, 0.9)]


def test_align_words_refuses_phonemes_that_do_not_match():
    assert align_words(["cat"], ["kæt"], [("d", 0.0, 0.1), ("ɔ", 0.1, 0.2), ("ɡ", 0.2, 0.3)]) is None
