"""Everyday speech generated from small grammars: dialogue, requests, numbers, names, short phrases and
multi-sentence messages. The templates and vocabularies here are ours (Apache-2.0, like the project).

Every number, date, time, amount and phone number is built as a structured value and rendered in its
spoken form ("twelve dollars and fifty cents", not "$12.50"): engines read written forms differently,
so the text an engine reads and the label are the same words. Spelling numbers uses inflect (MIT);
names, streets and cities come from faker (MIT). Generation is seeded and reproducible for a given
faker version (faker's word lists change between releases).
"""

from __future__ import annotations

import datetime
import functools
import random
import re
from collections.abc import Callable, Mapping, Sequence

import inflect
from faker import Faker

# One grammar slot: alternatives (themselves templates) or a function that draws a value.
Slot = Sequence[str] | Callable[[random.Random], str]
Grammar = Mapping[str, Slot]

_INFLECT = inflect.engine()
_SLOT = re.compile(r"\{(\w+)\}")
_SENTENCE_START = re.compile(r"(?:^|(?<=[.?!] ))[a-z]")
_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# Spelled here, not by strftime("%B"), which follows the machine's locale.
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


# ---------------------------------------------------------------------------------------------
# Spoken forms


@functools.cache  # inflect is slow (~0.3 ms a call) and the same small numbers come back all the time
def spoken_number(number: int) -> str:
    """A whole number in words, American style: 1234 -> "one thousand two hundred thirty-four"."""
    if number < 0:
        return "minus " + spoken_number(-number)
    return _INFLECT.number_to_words(number, andword="").replace(",", "")


@functools.cache
def spoken_ordinal(number: int) -> str:
    """3 -> "third", 21 -> "twenty-first"."""
    return _INFLECT.number_to_words(_INFLECT.ordinal(number), andword="").replace(",", "")


def spoken_digits(digits: str, zero: str = "oh") -> str:
    """Digits read one by one, groups (split on anything not a digit) separated by commas:
    "555-0142" -> "five five five, oh one four two"."""
    words = {**dict(zip("0123456789", _DIGIT_WORDS, strict=True)), "0": zero}
    groups = re.findall(r"\d+", digits)
    if not groups:
        raise ValueError(f"no digits in {digits!r}")
    return ", ".join(" ".join(words[d] for d in group) for group in groups)


def spoken_in_pairs(number: int) -> str:
    """Years and house numbers as people read them: 1984 -> "nineteen eighty-four", 1905 -> "nineteen oh five",
    2005 -> "two thousand five", 1900 -> "nineteen hundred", 405 -> "four oh five"."""
    if not 100 <= number <= 9999:
        return spoken_number(number)
    high, low = divmod(number, 100)
    if high % 10 == 0 and low < 10 and number >= 1000:
        return spoken_number(number)  # 2000..2009 and the like read as a whole
    if low == 0:
        return spoken_number(high) + " hundred"
    if low < 10:
        return f"{spoken_number(high)} oh {spoken_number(low)}"
    return f"{spoken_number(high)} {spoken_number(low)}"


def spoken_time(hour: int, minute: int, day_part: bool = False, style: str = "clock") -> str:
    """A time of day (24-hour input): (15, 45) -> "three forty-five", with day_part "three forty-five in the
    afternoon"; style "past" gives "quarter to four", "ten past three", "half past three"."""
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValueError(f"no such time {hour}:{minute:02d}")
    if style not in ("clock", "past"):
        raise ValueError(f"time style must be 'clock' or 'past', not {style!r}")
    if minute == 0 and hour in (0, 12):
        return "midnight" if hour == 0 else "noon"
    twelve = hour % 12 or 12
    if style == "past" and minute % 5 == 0:
        if minute == 0:
            spoken = f"{spoken_number(twelve)} o'clock"
        elif minute <= 30:
            spoken = f"{_minutes_phrase(minute)} past {spoken_number(twelve)}"
        else:
            spoken = f"{_minutes_phrase(60 - minute)} to {spoken_number(hour % 12 + 1)}"
    elif minute == 0:
        spoken = f"{spoken_number(twelve)} o'clock"
    elif minute < 10:
        spoken = f"{spoken_number(twelve)} oh {spoken_number(minute)}"
    else:
        spoken = f"{spoken_number(twelve)} {spoken_number(minute)}"
    return f"{spoken} {_day_part(hour)}" if day_part else spoken


def _minutes_phrase(minutes: int) -> str:
    return {15: "quarter", 30: "half"}.get(minutes, spoken_number(minutes))


def _day_part(hour: int) -> str:
    if hour < 12:
        return "in the morning"
    if 12 <= hour < 17:
        return "in the afternoon"
    if 17 <= hour < 21:
        return "in the evening"
    return "at night"


def spoken_date(date: datetime.date, style: str = "month_day", year: bool = False) -> str:
    """(2019, 3, 3) -> "March third"; style "day_of_month": "the third of March"; year adds ", twenty nineteen"."""
    if style not in ("month_day", "day_of_month"):
        raise ValueError(f"date style must be 'month_day' or 'day_of_month', not {style!r}")
    month = _MONTHS[date.month - 1]
    day = spoken_ordinal(date.day)
    spoken = f"the {day} of {month}" if style == "day_of_month" else f"{month} {day}"
    return f"{spoken}, {spoken_in_pairs(date.year)}" if year else spoken


_CURRENCIES = {"dollar": ("dollar", "dollars", "cent", "cents"), "pound": ("pound", "pounds", "penny", "pence"),
               "euro": ("euro", "euros", "cent", "cents")}


def spoken_money(cents: int, currency: str = "dollar") -> str:
    """An amount in the currency's smallest unit: 1250 -> "twelve dollars and fifty cents", 100 -> "one dollar",
    5 -> "five cents"."""
    one, many, small_one, small_many = _CURRENCIES[currency]
    whole, part = divmod(cents, 100)
    parts = []
    if whole:
        parts.append(f"{spoken_number(whole)} {one if whole == 1 else many}")
    if part or not whole:
        parts.append(f"{spoken_number(part)} {small_one if part == 1 else small_many}")
    return " and ".join(parts)


# ---------------------------------------------------------------------------------------------
# Grammar expansion (a recursive template fill: a dozen lines, lighter than a grammar library)


def expand(template: str, grammar: Grammar, rng: random.Random) -> str:
    """Fill every {slot} of template from grammar, recursively, drawing alternatives with rng."""

    def fill(match: re.Match) -> str:
        slot = grammar[match.group(1)]
        return slot(rng) if callable(slot) else expand(rng.choice(slot), grammar, rng)

    return _SLOT.sub(fill, template)


def generate(grammar: Grammar, start: str, seed: int, count: int) -> list[str]:
    """count draws of the start symbol (duplicates included; callers keep the distinct ones)."""
    rng = random.Random(seed)
    return [_SENTENCE_START.sub(_upper, expand("{" + start + "}", grammar, rng)) for _ in range(count)]


def _upper(match: re.Match) -> str:
    return match.group().upper()


def _faker(seed: int) -> Faker:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    return fake


def _value_slots(fake: Faker) -> dict[str, Slot]:
    """Slots that draw structured values and render them spoken."""

    def time_of_day(rng: random.Random) -> str:
        return spoken_time(rng.randrange(24), rng.choice((0, 0, 5, 10, 15, 20, 30, 30, 40, 45, 50, rng.randrange(60))),
                           day_part=rng.random() < 0.4, style=rng.choice(("clock", "clock", "past")))

    def date(rng: random.Random) -> str:
        value = datetime.date(rng.randrange(1950, 2031), 1, 1) + datetime.timedelta(days=rng.randrange(365))
        return spoken_date(value, rng.choice(("month_day", "day_of_month")), year=rng.random() < 0.3)

    def money(rng: random.Random) -> str:
        cents = rng.choice((rng.randrange(1, 100), rng.randrange(100, 10_000), rng.randrange(1, 500) * 100,
                            rng.randrange(10, 5000) * 100))
        return spoken_money(cents, rng.choices(tuple(_CURRENCIES), (8, 1, 1))[0])

    def phone(rng: random.Random) -> str:
        # 555-01xx numbers are reserved for fiction; area codes are any three digits not starting with 0 or 1.
        digits = f"{rng.randrange(200, 1000)}-555-01{rng.randrange(100):02d}"
        return spoken_digits(digits if rng.random() < 0.6 else digits[4:], zero=rng.choice(("oh", "zero")))

    def count(rng: random.Random) -> str:
        return spoken_number(rng.choice((rng.randrange(2, 13), rng.randrange(13, 100), rng.randrange(100, 10_000))))

    def year(rng: random.Random) -> str:
        return spoken_in_pairs(rng.randrange(1900, 2031))

    def address(rng: random.Random) -> str:
        return f"{spoken_in_pairs(rng.randrange(1, 9999))} {fake.street_name()}"

    return {
        "time": time_of_day, "date": date, "money": money, "phone": phone, "count": count, "year": year,
        "ordinal": lambda rng: spoken_ordinal(rng.randrange(1, 32)),
        "percent": lambda rng: f"{spoken_number(rng.randrange(1, 101))} percent",
        "degrees": lambda rng: f"{spoken_number(rng.randrange(-10, 105))} degrees",
        "small": lambda rng: spoken_number(rng.randrange(2, 13)),
        "minutes": lambda rng: spoken_number(rng.choice((5, 10, 15, 20, 30, 45))) + " minutes",
        "digits": lambda rng: spoken_digits(str(rng.randrange(10_000, 100_000)), zero=rng.choice(("oh", "zero"))),
        "room_number": lambda rng: spoken_in_pairs(rng.randrange(100, 1000)),
        "first": lambda rng: fake.first_name(), "last": lambda rng: fake.last_name(),
        "city": lambda rng: fake.city(), "state": lambda rng: fake.state(), "street": lambda rng: fake.street_name(),
        "address": address, "company": lambda rng: fake.last_name() + " " + rng.choice(_BUSINESS_KINDS),
    }


_BUSINESS_KINDS = ("Hardware", "Bakery", "Dental", "Plumbing", "Insurance", "Pharmacy", "Books", "Motors", "Realty")

# Shared vocabulary of everyday life.
_WORDS: dict[str, Slot] = {
    "place": ["the pharmacy", "the bank", "the post office", "the library", "the gym", "the grocery store",
              "the dentist", "the office", "the airport", "the train station", "the school", "the hospital",
              "the hardware store", "the bakery", "the park", "the museum", "the restaurant", "the coffee shop",
              "the doctor's office", "the car wash", "the mall", "the cinema", "the pool", "your place", "my mom's"],
    "room": ["kitchen", "living room", "bedroom", "bathroom", "hallway", "garage", "office", "dining room",
             "basement", "porch", "nursery", "guest room"],
    "device": ["lights", "lamp", "fan", "heater", "air conditioner", "television", "radio", "oven", "dishwasher",
               "washing machine", "coffee maker", "speaker", "thermostat", "alarm"],
    "thing": ["my keys", "the charger", "my wallet", "the umbrella", "the receipt", "my glasses", "the remote",
              "your jacket", "the tickets", "the car keys", "my phone", "the grocery list", "the blue folder",
              "a pen", "the spare key", "the mail", "my headphones", "the dog's leash"],
    "food": ["pizza", "tacos", "pasta", "soup", "a salad", "sushi", "sandwiches", "pancakes", "curry", "burgers",
             "fried rice", "a burrito", "noodles", "eggs and toast", "chicken", "leftovers"],
    "drink": ["coffee", "tea", "water", "orange juice", "a latte", "hot chocolate", "lemonade", "a smoothie"],
    "person": ["your sister", "my brother", "the neighbours", "your boss", "the kids", "grandma", "my friend",
               "the plumber", "the landlord", "your teacher", "the doctor", "our manager", "the new guy", "{first}"],
    "day": ["today", "tomorrow", "tonight", "this weekend", "on Monday", "on Tuesday", "on Wednesday",
            "on Thursday", "on Friday", "on Saturday", "on Sunday", "next week", "this afternoon",
            "tomorrow morning", "later today", "on {date}"],
    "activity": ["go for a walk", "watch a movie", "grab lunch", "go shopping", "clean the house", "play cards",
                 "visit grandma", "go to the beach", "cook dinner", "do the laundry", "go running", "study",
                 "fix the sink", "paint the fence", "wash the car", "walk the dog", "call the bank",
                 "book the flight", "pick up the kids", "water the plants"],
    "feeling": ["tired", "hungry", "excited", "nervous", "busy", "bored", "happy", "sick", "cold", "lost",
                "running late", "almost done", "stuck in traffic", "on my way"],
    "song_thing": ["the next song", "some jazz", "the news", "my workout playlist", "the radio", "a podcast",
                   "something relaxing", "the weather forecast"],
}

DIALOGUE: dict[str, Slot] = {
    "start": ["{question}", "{question}", "{statement}", "{statement}", "{reply} {statement}",
              "{reply} {question}", "{greeting} {question}"],
    "question": [
        "what time does {place} close?", "what time does {place} open {day}?", "is {place} open {day}?",
        "where did you put {thing}?", "have you seen {thing}?", "do you want to {activity} {day}?",
        "are you coming to dinner {day}?", "how was your day?", "how long will it take to get to {place}?",
        "can you tell me how to get to {place}?", "what do you want for dinner?", "should we order {food}?",
        "did you remember to {activity}?", "who's picking up {person}?", "when is {person} coming over?",
        "why are you so {feeling}?", "is it going to rain {day}?", "what are you doing {day}?",
        "how much does it cost?", "do you have any {drink}?", "would you like some {drink}?",
        "could you help me with this?", "where are we meeting?", "which one do you like better?",
        "did {person} call back?", "have you eaten yet?", "are we still on for {day}?",
        "what did the doctor say?", "how far is {place} from here?", "is there a {drink} machine around here?",
        "how do you spell that?", "what's the password for the internet?", "can I call you back later?",
        "where do you want to go {day}?", "how many people are coming?", "what's the weather like {day}?",
    ],
    "statement": [
        "I'm {feeling}.", "I'll be there in a few minutes.", "I think I left {thing} at {place}.",
        "{person} said {place} closes early {day}.", "we're out of {drink}.", "I can't find {thing} anywhere.",
        "let's {activity} {day}.", "I'd rather have {food} tonight.", "I have to {activity} first.",
        "{person} is coming over {day}.", "the meeting got moved to {day}.", "I already told {person}.",
        "I'll grab {thing} on my way out.", "it's too late to {activity} now.", "I'm not sure, let me check.",
        "you left {thing} in the car.", "we should {activity} more often.", "the traffic was terrible.",
        "I'll meet you at {place}.", "that sounds like a great idea.", "I don't think that's right.",
        "I just got home.", "I'm going to {place}, do you need anything?", "it was really nice to see you.",
        "I totally forgot about that.", "we can talk about it later.", "my phone is about to die.",
    ],
    "reply": ["yes,", "no,", "well,", "honestly,", "oh,", "sure,", "actually,", "okay,", "sorry,",
              "hey,", "right,", "I mean,", "to be honest,"],
    "greeting": ["hi,", "hello,", "hey there,", "good morning,", "excuse me,", "hi {first},", "morning,"],
    **_WORDS,
}

COMMANDS: dict[str, Slot] = {
    "start": ["{command}", "{command}", "{polite} {request}", "{request_question}", "{request}"],
    "command": [
        "turn the {room} {device} off{when}.", "turn off the {device} in the {room}{when}.",
        "turn on the {room} {device}{when}.",
        "switch the {device} on{when}.", "dim the {room} lights.", "set the thermostat to {small_temp}.",
        "set a timer for {minutes}.", "set an alarm for {time}.", "wake me up at {time}.",
        "remind me to {activity} {day}.", "remind me to call {person} at {time}.", "play {song_thing}.",
        "skip this song.", "turn the volume up.", "turn it down a little.", "call {first} {last}.",
        "text {person} that I'm {feeling}.", "add {food} to the shopping list.", "add {drink} to my list.",
        "cancel my {time} appointment.", "open the garage door.", "lock the front door.",
        "close the blinds in the {room}.", "start the {device}.", "stop the {device}.",
        "show me the way to {place}.", "navigate to {place}.", "take me home.", "read me my messages.",
        "send the report to {person}.", "pause the movie.", "what's next on my calendar?",
        "put {thing} on the table.", "don't forget {thing}.", "bring {thing} when you come.",
    ],
    "request": [
        "pass me the salt.", "close the door behind you.", "call me when you get to {place}.",
        "pick up some {drink} on the way home.", "grab {thing} for me.", "check if {place} is still open.",
        "take the trash out tonight.", "feed the cat before you leave.", "wait for me at {place}.",
        "send me the address.", "let {person} know we're running late.", "save me a seat.",
        "turn the {device} off when you're done.", "hold the elevator.", "speak a little slower.",
    ],
    "polite": ["please", "hey,", "if you get a chance,", "when you have a minute,", "{first},"],
    "request_question": ["could you {activity} {day}?", "would you mind turning off the {device}?",
                         "can you {activity} for me?", "could you pick up {thing} from {place}?",
                         "can you turn the {room} {device} on?", "would you please {activity}?"],
    "when": ["", "", " right now", " in {minutes}", " at {time}", " please"],
    "small_temp": lambda rng: spoken_number(rng.randrange(60, 80)) + " degrees",
    **_WORDS,
}

NUMBERS: dict[str, Slot] = {
    "start": ["{fact}"],
    "fact": [
        "my number is {phone}.", "you can reach me at {phone}.", "call {company} at {phone}.",
        "the pharmacy closes at {time}.", "the train leaves at {time}.", "your appointment is at {time} on {date}.",
        "the meeting is on {date} at {time}.", "my birthday is {date}.", "she was born in {year}.",
        "we moved here in {year}.", "it costs {money}.", "that comes to {money}.", "the total is {money}, please.",
        "I paid {money} for it.", "rent is going up to {money} a month.", "can you lend me {money}?",
        "it's {degrees} outside.", "the battery is at {percent}.", "there's a {percent} chance of rain {day}.",
        "I live at {address}.", "send it to {address}, {city}, {state}.", "the office is at {address}.",
        "my name is {first} {last}.", "this is {first} {last} from {company}.", "ask for {first} at the front desk.",
        "{first} {last} lives in {city}.", "we're flying to {city} on {date}.", "the zip code is {digits}.",
        "your confirmation number is {digits}.", "the order number is {digits}.", "she's in room {room_number}.",
        "we need {count} chairs.", "there were about {count} people there.", "I walked {count} steps today.",
        "the flight lands at {time}.", "the store opens at {time} {day}.", "it's due on the {ordinal}.",
        "we're on the {ordinal} floor.", "I'll see you at {time}.", "the bus comes every {minutes}.",
        "it happened on {date}.", "the movie starts at {time}.", "take the {ordinal} exit.",
        "the score was {small} to {small}.", "I have {small} kids and {small} cats.",
        "it's about {count} miles from here.", "the bill was {money} including tip.",
    ],
    "day": _WORDS["day"],
}

SHORT: dict[str, Slot] = {
    "phrase_or_command": ["{phrase}", "{phrase}", "{command}"],
    "value": ["{number_phrase}", "{name_phrase}"],
    "phrase": [
        "yes", "no", "okay", "sure", "thanks", "thank you", "no thanks", "yes please", "hello", "hi there", "goodbye",
        "see you later", "good morning", "good night", "excuse me", "sorry", "I'm sorry", "never mind", "not yet",
        "maybe later", "sounds good", "all right", "of course", "no problem", "you're welcome", "me too",
        "I don't know", "I think so", "not really", "hang on", "just a minute", "one moment please", "got it",
        "wait", "stop", "help", "really?", "what?", "why not?", "how much?", "where?", "when?", "who is it?",
        "come in", "let's go", "over here", "right there", "good job", "well done", "happy birthday",
        "congratulations", "bless you", "take care", "drive safe", "have fun", "good luck", "nice to meet you",
        "what happened?", "are you okay?", "I'm fine", "not bad", "pretty good", "absolutely", "definitely",
        "probably not", "no way", "fair enough", "oh no", "oh well", "cheers", "same here", "almost there",
        "coming", "done", "ready?", "hold on", "next please", "check please", "table for two", "the usual",
        "{food}", "{drink} please", "{place}", "the {room}", "my {device}", "{feeling}",
    ],
    "number_phrase": ["{small}", "{count}", "page {small}", "room {room_number}", "gate {small}", "{small} please",
                      "{time}", "{date}", "{money}", "{year}", "the {ordinal}", "{percent}", "{minutes}"],
    "name_phrase": ["{first}", "{first} {last}", "Mister {last}", "Doctor {last}", "hi {first}",
                    "thanks {first}", "call {first}"],
    "command": ["lights off", "lights on", "volume up", "volume down", "next track", "pause", "play",
                "turn it off", "open the door", "call home", "stop the timer", "what time is it?", "skip",
                "louder", "go back", "cancel that", "play {song_thing}", "call {first}"],
    **_WORDS,
}

MESSAGES: dict[str, Slot] = {
    "start": ["{voicemail}", "{voicemail}", "{chat}", "{story}"],
    "voicemail": [
        "{hello} it's {first}. {body} {body} {callback} {bye}",
        "{hello} this is {first} {last} from {company}. {business} {business} {callback} {bye}",
        "{hello} {body} {body} {body} {bye}",
        "{hello} it's {first}. {body} {body} {body} {body} {callback} {bye}",
        "{hello} this is {first} from {company}. {business} {business} {business} {callback} {bye}",
    ],
    "chat": ["{q} {a} {q} {a}", "{q} {a} {a} {q}", "{reply} {statement} {q} {statement}",
             "{q} {a} {q} {a} {q} {a}"],
    "story": ["{opening} {event} {event} {event} {closing}", "{opening} {event} {event} {event} {event} {closing}",
              "{opening} {event} {event} {event} {event} {event} {closing}"],
    "hello": ["hi {first},", "hey,", "hello,", "hi there,", "good morning,", "hey {first},"],
    "body": ["I'm running about {minutes} late.", "I just wanted to check if we're still on for {day}.",
             "I left {thing} at your place.", "can you pick up {drink} on your way home?",
             "{person} says hi.", "the dinner is at {time} {day}.", "I found {thing} in my bag.",
             "don't forget we have to {activity} {day}.", "I'll be at {place} until {time}.",
             "I paid {money} for the tickets, so you owe me half.", "the party moved to {address}."],
    "business": ["I'm calling about your appointment on {date} at {time}.",
                 "your order number {digits} is ready for pickup.", "the balance due is {money}.",
                 "we're open until {time} {day}.", "please bring your insurance card.",
                 "your prescription is ready at {place}."],
    "callback": ["call me back at {phone}.", "you can reach me at {phone}.", "just text me when you get this.",
                 "call me when you can.", "please call us back at {phone}."],
    "bye": ["thanks, bye.", "talk to you later.", "bye.", "see you soon.", "have a great day.", "thanks so much."],
    "q": DIALOGUE["question"],
    "a": DIALOGUE["statement"],
    "statement": DIALOGUE["statement"],
    "reply": DIALOGUE["reply"],
    "opening": ["so yesterday I went to {place}.", "you won't believe what happened {past_day}.",
                "last {weekday} {person} called me at {time}.", "{past_day} I had to {activity}."],
    "past_day": ["yesterday", "last night", "this morning", "on {weekday}", "last week"],
    "event": ["the line was out the door, so I waited about {minutes}.", "I ran into {person} by the entrance.",
              "they told me it would cost {money}.", "I realised I had forgotten {thing}.",
              "it started raining as soon as I got out of the car.", "we ended up getting {food} instead.",
              "{person} offered to drive me home.", "the whole thing took {minutes}.",
              "I had to go back to {place} to get {thing}.", "we didn't get home until {time}."],
    "closing": ["anyway, it all worked out in the end.", "what a day.", "I'm never doing that again.",
                "next time I'm staying home.", "so that was my {weekday}."],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    **_WORDS,
}


def _with_values(grammar: Grammar, seed: int) -> dict[str, Slot]:
    values = _value_slots(_faker(seed))
    if clash := values.keys() & grammar.keys():
        raise ValueError(f"grammar slots {sorted(clash)} would hide the value slots of the same name")
    return {**values, **grammar}


def dialogue(seed: int, count: int) -> list[str]:
    """Conversational questions, statements and replies (our templates, Apache-2.0; names from faker, MIT)."""
    return generate(_with_values(DIALOGUE, seed), "start", seed, count)


def commands(seed: int, count: int) -> list[str]:
    """Commands and requests to a person or a voice assistant (our templates, Apache-2.0; faker, MIT)."""
    return generate(_with_values(COMMANDS, seed), "start", seed, count)


def numbers(seed: int, count: int) -> list[str]:
    """Numbers, dates, times, money, phone numbers, names and addresses, spoken (our templates, Apache-2.0;
    faker and inflect, MIT)."""
    return generate(_with_values(NUMBERS, seed), "start", seed, count)


def short_phrases(seed: int, count: int) -> list[str]:
    """Everyday phrases and commands of a few words (our list and templates, Apache-2.0; faker, MIT)."""
    return generate(_with_values(SHORT, seed), "phrase_or_command", seed, count)


def short_values(seed: int, count: int) -> list[str]:
    """Names, numbers, times and dates said on their own (our templates, Apache-2.0; faker and inflect, MIT)."""
    return generate(_with_values(SHORT, seed), "value", seed, count)


def messages(seed: int, count: int) -> list[str]:
    """Multi-sentence voicemails, chats and anecdotes (our templates, Apache-2.0; faker and inflect, MIT)."""
    return generate(_with_values(MESSAGES, seed), "start", seed, count)
