"""Text sources of the synthetic corpus: registers, licences, word limits and spoken forms."""

import datetime
import gzip
import json
import random
import re

import pytest

import audiograft
from audiograft.corpora import everyday, texts
from audiograft.corpora.everyday import (
    spoken_date,
    spoken_digits,
    spoken_in_pairs,
    spoken_money,
    spoken_number,
    spoken_ordinal,
    spoken_time,
)
from audiograft.corpora.texts import (
    DEFAULT_MIX,
    DEFAULT_SOURCES,
    TEXT_SOURCES,
    LEVERS,
    WORD_LIMITS,
    TextSource,
    chatbot_conversations,
    drop_overlapping,
    everyday_words,
    fortune_cookies,
    kjv_passages,
    load_texts,
    named_sources,
    normalise_sentence,
    scrambled_texts,
    source_weights,
    word_runs,
)

# What every engine reads the same way: letters, spaces and plain punctuation, no digits or symbols.
PLAIN = re.compile(r"[A-Za-z ,.;:'?!-]+")


def test_normalise_sentence_keeps_plain_sentences_and_drops_unreadable_ones():
    assert normalise_sentence("the ship was  grounded by the storm") == "The ship was grounded by the storm."
    assert normalise_sentence("And the LORD said unto Moses, Go in.") == "And the Lord said unto Moses, Go in."
    assert normalise_sentence("-v is read as an option by the engines") is None
    assert normalise_sentence("he paid 30 dollars for the old book") is None
    assert normalise_sentence("too short here") is None
    assert normalise_sentence(" ".join(["word"] * 30)) is None


def test_normalise_sentence_applies_the_word_limits_it_is_given():
    assert normalise_sentence("yes", WORD_LIMITS["short"]) == "Yes."
    assert normalise_sentence("no thanks!", WORD_LIMITS["short"]) == "No thanks!"
    assert normalise_sentence("turn the kitchen lights off", WORD_LIMITS["short"]) is None
    assert normalise_sentence("Hi. It is me. " * 10, WORD_LIMITS["long"]) == ("Hi. It is me. " * 10).strip()
    assert normalise_sentence("$12.50 please", WORD_LIMITS["short"]) is None


def test_numbers_are_spelled_as_they_are_said():
    assert spoken_number(1234) == "one thousand two hundred thirty-four"
    assert spoken_number(-5) == "minus five"
    assert spoken_ordinal(3) == "third" and spoken_ordinal(21) == "twenty-first"
    assert [spoken_in_pairs(n) for n in (1984, 1905, 1900, 2000, 2005, 2019, 2010, 405, 1234, 17)] == [
        "nineteen eighty-four", "nineteen oh five", "nineteen hundred", "two thousand", "two thousand five",
        "twenty nineteen", "twenty ten", "four oh five", "twelve thirty-four", "seventeen",
    ]


def test_times_are_spelled_as_they_are_said():
    assert spoken_time(3, 45) == "three forty-five"
    assert spoken_time(15, 45) == "three forty-five"
    assert spoken_time(15, 45, day_part=True) == "three forty-five in the afternoon"
    assert spoken_time(9, 5, day_part=True) == "nine oh five in the morning"
    assert spoken_time(22, 0, day_part=True) == "ten o'clock at night"
    assert spoken_time(12, 0) == "noon" and spoken_time(0, 0, day_part=True) == "midnight"
    assert spoken_time(15, 45, style="past") == "quarter to four"
    assert spoken_time(23, 45, style="past") == "quarter to twelve"
    assert spoken_time(15, 30, style="past") == "half past three"
    assert spoken_time(3, 10, style="past") == "ten past three"
    assert spoken_time(3, 12, style="past") == "three twelve"
    with pytest.raises(ValueError, match="24:00"):
        spoken_time(24, 0)
    with pytest.raises(ValueError, match="'military'"):
        spoken_time(3, 0, style="military")


def test_dates_money_and_phone_numbers_are_spelled_as_they_are_said():
    march_third = datetime.date(2019, 3, 3)
    assert spoken_date(march_third) == "March third"
    assert spoken_date(march_third, style="day_of_month") == "the third of March"
    assert spoken_date(march_third, year=True) == "March third, twenty nineteen"
    assert spoken_money(1250) == "twelve dollars and fifty cents"
    assert spoken_money(100) == "one dollar"
    assert spoken_money(101) == "one dollar and one cent"
    assert spoken_money(5) == "five cents"
    assert spoken_money(250, "pound") == "two pounds and fifty pence"
    assert spoken_digits("555-0142") == "five five five, oh one four two"
    assert spoken_digits("(212) 555-0100", zero="zero") == "two one two, five five five, zero one zero zero"
    with pytest.raises(ValueError, match="'iso'"):
        spoken_date(march_third, style="iso")
    with pytest.raises(ValueError, match="no digits"):
        spoken_digits("call me")


def test_every_source_names_its_register_and_licence():
    assert len({source.name for source in TEXT_SOURCES}) == len(TEXT_SOURCES)
    assert {source.register for source in TEXT_SOURCES} == WORD_LIMITS.keys() == DEFAULT_MIX.keys()
    assert all(source.licence for source in TEXT_SOURCES)
    assert all(weight > 0 for weight in DEFAULT_MIX.values())


def test_every_register_yields_plain_words_within_its_limits(monkeypatch):
    monkeypatch.setattr(texts, "GENERATED_DRAWS", 300)
    loaded = load_texts()
    register_of = {source.name: source.register for source in TEXT_SOURCES}
    # Every register but the written one is generated, so present whatever Debian packages are installed; scrambled
    # words and fortune cookies (the text levers) are read only when asked for.
    assert WORD_LIMITS.keys() - {"written", "scrambled", "quotations"} <= {register_of[name] for name in loaded}
    levers = [s.name for s in TEXT_SOURCES if s not in DEFAULT_SOURCES]
    assert levers == ["scrambled", "everyday_words", "fortunes", "conversations"] and not loaded.keys() & levers
    assert set(levers) == LEVERS
    for name, items in loaded.items():
        limits = WORD_LIMITS[register_of[name]]
        assert items, name
        assert all(PLAIN.fullmatch(text) for text in items), [t for t in items if not PLAIN.fullmatch(t)][:3]
        assert all(len(text.split()) in limits for text in items), name


@pytest.mark.parametrize(
    "generator", [everyday.dialogue, everyday.commands, everyday.numbers, everyday.short_phrases,
                  everyday.short_values, everyday.messages],
)
def test_generators_write_no_digit_or_symbol_and_repeat_with_their_seed(generator):
    drawn = generator(7, 200)
    assert drawn == generator(7, 200) and drawn != generator(8, 200)
    assert all(PLAIN.fullmatch(text) for text in drawn), [t for t in drawn if not PLAIN.fullmatch(t)][:3]


def test_generated_numbers_are_said_in_words():
    drawn = " ".join(everyday.numbers(0, 300))
    assert re.search(r"\bfive five five, (oh|zero) one\b", drawn)  # phone numbers, digit by digit
    assert re.search(r"\b(dollars?|cents?)\b", drawn) and re.search(r"\bpercent\b", drawn)


def test_load_texts_keeps_each_text_once_within_its_register_limits():
    sources = (
        TextSource("answers", "short", "ours", lambda: ["yes", "Yes!", "no thanks", "turn it off now please"]),
        TextSource("questions", "dialogue", "ours", lambda: ["no thanks.", "where are we meeting?"]),
        TextSource("unused", "written", "ours", lambda: ["This is never read at all."]),
    )
    mix = {"short": 1.0, "dialogue": 1.0}
    assert load_texts(sources, mix) == {"answers": ["No thanks.", "Yes."], "questions": ["Where are we meeting?"]}
    with pytest.raises(RuntimeError, match="no text source"):
        load_texts(sources[2:], mix)


def test_named_sources_keep_the_order_named_and_name_every_unknown_one():
    assert [source.name for source in named_sources(["wordnet", "kjv"])] == ["wordnet", "kjv"]
    with pytest.raises(ValueError, match=r"unknown text sources \['novels', 'poems'\]; known: \['kjv', "):
        named_sources(["poems", "kjv", "novels"])


def test_source_weights_split_each_register_between_its_sources():
    weights = source_weights(["kjv", "wordnet", "numbers"])
    assert weights == {"kjv": DEFAULT_MIX["written"] / 2, "wordnet": DEFAULT_MIX["written"] / 2,
                       "numbers": DEFAULT_MIX["numbers"]}
    with pytest.raises(ValueError, match="unknown text sources"):
        source_weights(["kjv", "novels"])


def test_scrambled_texts_draw_pool_words_as_spelled_inside_sentences_and_repeat_with_their_seed():
    pools = {"kjv": ["And God said, Let there be light.", "Rivers ran to the sea; and God saw it."],
             "wordnet": ["'the river rose' after the storm."]}
    drawn = scrambled_texts(pools, 200, seed=4, words=range(2, 6))
    assert drawn == scrambled_texts(pools, 200, seed=4, words=range(2, 6)) != scrambled_texts(pools, 200, 5, range(2, 6))
    assert all(len(text.split()) in range(2, 6) for text in drawn)
    words = {word for text in drawn for word in text.split()}
    # "God" and "Let" are capitalised inside a sentence; "Rivers" and "And" only start one, so they are written in lower case;
    # WordNet's quotes and the punctuation stay behind.
    assert words == {"and", "God", "said", "Let", "there", "be", "light", "rivers", "ran", "to", "the", "sea",
                     "saw", "it", "river", "rose", "after", "storm"}


@pytest.mark.parametrize("name, needs", [("scrambled", None), ("everyday_words", "wordfreq")])
def test_scrambled_word_sources_give_plain_texts_within_the_register_limits(monkeypatch, name, needs):
    if needs:
        pytest.importorskip(needs)
    monkeypatch.setattr(texts, "GENERATED_DRAWS", 100)
    source = next(source for source in TEXT_SOURCES if source.name == name)
    loaded = load_texts((source,))[name]
    assert len(loaded) > 150 and all(PLAIN.fullmatch(text) for text in loaded)
    assert all(len(text.split()) in WORD_LIMITS["scrambled"] for text in loaded)


def test_everyday_words_draw_wordfreq_words_by_frequency_and_as_the_pools_spell_them(monkeypatch):
    wordfreq = pytest.importorskip("wordfreq")
    frequencies = {"the": 0.05, "i": 0.02, "monday": 0.001, "don't": 0.001, "rare": 0.0001, "gone": 0.0001,
                   "2nd": 0.01, "e-mail": 0.01, "café": 0.01}
    monkeypatch.setattr(wordfreq, "get_frequency_dict", lambda language: frequencies if language == "en" else {})
    pools = {"dialogue": ["See you on Monday, I said.", "Gone."]}
    drawn = everyday_words(pools, 400, seed=1, vocabulary=5, words=range(3, 4))
    assert drawn == everyday_words(pools, 400, seed=1, vocabulary=5, words=range(3, 4))
    words = [word for text in drawn for word in text.split()]
    assert len(words) == 1200
    # Plain words only, the five most frequent of them ("gone", as rare as "rare", listed after it, is cut); "Monday"
    # and "I" as the pools write them inside a sentence, the rest in lower case, as wordfreq lists them.
    assert set(words) == {"the", "I", "Monday", "don't", "rare"}
    # Half the draws by frequency: "the" comes far more often than "rare", which only the uniform half draws.
    assert words.count("the") > 3 * words.count("rare") > 0


def test_chatbot_conversations_read_every_line_of_every_english_file(tmp_path):
    (tmp_path / "greetings.yml").write_text("categories:\n- greetings\nconversations:\n- - Hello\n  - Hi there, how are"
                                            " you?\n- - What time is it?\n  - 42\n")
    (tmp_path / "empty.yml").write_text("categories:\n- empty\n")
    assert chatbot_conversations(tmp_path) == ["Hello", "Hi there, how are you?", "What time is it?"]


def test_conversations_source_gives_plain_lines_when_chatterbot_corpus_is_installed():
    pytest.importorskip("chatterbot_corpus")
    source = next(source for source in TEXT_SOURCES if source.name == "conversations")
    loaded = load_texts((source,))["conversations"]
    assert len(loaded) > 1000 and all(PLAIN.fullmatch(text) for text in loaded)
    assert "Good morning, how are you?" in loaded


def test_fortune_cookies_drop_attributions_and_left_out_files_and_split_long_cookies(tmp_path):
    # An attribution may go on over indented lines ("One Hundred"): those are not part of the quotation.
    (tmp_path / "wisdom").write_text("A friend is a present you give yourself.\n\t\t-- Robert Louis Stevenson\n%\n"
                                     "Coach: What's up,\nNorm?\n\t\t-- Cheers, episode\n\t\t   One Hundred\n%\n"
                                     + "Long words here. " * 7 + "\n%\n")
    (tmp_path / "wisdom.dat").write_bytes(b"\x00\x02 index, not a cookie file")
    (tmp_path / "songs-poems").write_text("Lyrics of a song that is not ours.\n%\n")
    cookies = fortune_cookies(tmp_path, left_out=frozenset({"songs-poems"}), words=range(2, 12))
    assert cookies[:2] == ["A friend is a present you give yourself.", "Coach: What's up, Norm?"]
    # The cookie of 21 words is read sentence by sentence; the empty text after the last "%" is dropped by load_texts.
    assert cookies[2:9] == ["Long words here."] * 7
    assert fortune_cookies(tmp_path / "missing") == []


def test_fortunes_source_gives_plain_quotations_when_installed():
    fortunes = next(source for source in TEXT_SOURCES if source.name == "fortunes")
    if not fortune_cookies():
        pytest.skip("Debian's fortunes is not installed")
    loaded = load_texts((fortunes,))["fortunes"]
    assert len(loaded) > 10_000 and all(PLAIN.fullmatch(text) for text in loaded)
    assert all(len(text.split()) in WORD_LIMITS["quotations"] for text in loaded)


def test_drop_overlapping_removes_texts_sharing_a_run_of_words_with_held_out_ones():
    assert word_runs("Go forward, ten meters now!", 3) == {"go forward ten", "forward ten meters", "ten meters now"}
    assert word_runs("Too short.", 3) == set()
    pools = {"fortunes": ["Please go forward ten meters now.", "Go forward slowly, ten meters.", "Ten."],
             "kjv": ["And they went forward ten meters."]}
    kept = drop_overlapping(pools, ["go FORWARD ten meters", "another one"], length=4)
    # The Bible's text shares three words in a row with the held-out one, not four.
    assert kept == {"fortunes": ["Go forward slowly, ten meters.", "Ten."], "kjv": pools["kjv"]}
    assert drop_overlapping(pools, ["they went forward ten"], length=4)["kjv"] == []
    assert drop_overlapping(pools, []) == pools


def test_kjv_passages_join_whole_consecutive_verses_of_one_chapter(monkeypatch):
    ten_words = "And he went up into the mountain to pray alone."
    chapters = ((ten_words,) * 5 + ("Verse 12 has a digit.",) + (ten_words,) * 2, (ten_words,) * 9)
    monkeypatch.setattr(texts, "_kjv_chapters", lambda: chapters)
    passages = kjv_passages(range(20, 41))
    # Four verses fill a passage; the unreadable verse ends a run; a run never crosses a chapter.
    assert [len(p.split()) for p in passages] == [40, 20, 40, 40]
    assert all(PLAIN.fullmatch(p) for p in passages)


def test_a_grammar_slot_may_not_hide_a_value_slot():
    with pytest.raises(ValueError, match=r"\['room_number'\]"):
        everyday.generate(everyday._with_values({"room_number": ["nine"]}, seed=0), "room_number", 0, 1)


def test_expand_fills_slots_recursively_from_alternatives_and_value_functions():
    grammar = {"greeting": ["hi {name}"], "name": lambda rng: "Ann"}
    assert everyday.expand("{greeting}, {name}.", grammar, random.Random(0)) == "hi Ann, Ann."
    assert everyday.generate(grammar, "greeting", seed=0, count=2) == ["Hi Ann", "Hi Ann"]


def test_text_pools_read_back_as_load_texts_returned_them_with_version_and_licences(tmp_path):
    pools = {"dialogue": ["Could you call Anna back?", "See you soon."], "kjv": ["And God saw the light."]}
    path = texts.write_text_pools(tmp_path / "texts.json.gz", pools)
    assert texts.read_text_pools(path) == pools
    with gzip.open(path, "rt") as lines:
        document = json.load(lines)
    assert document["audiograft"] == audiograft.__version__
    assert document["licences"]["kjv"].startswith("public domain")


def test_reading_a_file_that_holds_no_text_pools_names_it(tmp_path):
    plain = tmp_path / "plain.json.gz"
    plain.write_text("not gzip")
    with pytest.raises(ValueError, match="plain.json.gz: not a text pool file"):
        texts.read_text_pools(plain)
    empty = tmp_path / "empty.json.gz"
    with gzip.open(empty, "wt") as out:
        json.dump({"texts": {"kjv": [1, 2]}}, out)
    with pytest.raises(ValueError, match="empty.json.gz: holds no text pools"):
        texts.read_text_pools(empty)
