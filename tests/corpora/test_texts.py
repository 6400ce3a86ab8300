"""Text sources of the synthetic corpus."""

from audiograft.corpora.texts import normalise_sentence


def test_normalise_sentence_keeps_plain_sentences_and_drops_unreadable_ones():
    assert normalise_sentence("the ship was  grounded by the storm") == "The ship was grounded by the storm."
    assert normalise_sentence("And the LORD said unto Moses, Go in.") == "And the Lord said unto Moses, Go in."
    assert normalise_sentence("-v is read as an option by the engines") is None
    assert normalise_sentence("he paid 30 dollars for the old book") is None
    assert normalise_sentence("too short here") is None
    assert normalise_sentence(" ".join(["word"] * 30)) is None
