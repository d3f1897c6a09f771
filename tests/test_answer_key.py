"""Agreement about the answer, not the question: prompt discounting and the vote answer key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensemble
from ensemble.metrics.prompt import bind_prompt, copied_words, discount_prompt, strip_prompt
from ensemble.metrics.vote import VoteMetric, answer_key

Q = "Who wrote the novel Pride and Prejudice? Answer in one short sentence."


def test_strip_prompt_removes_runs_copied_from_the_prompt() -> None:
    text = "The novel Pride and Prejudice was written by Jane Austen."
    assert strip_prompt(text, Q) == "was written by Jane Austen"
    assert copied_words("Pride is good", Q) == [False, False, False]  # one word is no run
    assert strip_prompt("Pride and Prejudice", Q) == ""
    assert strip_prompt("Jane Austen", Q, min_run=1) == "Jane Austen"
    with pytest.raises(ValueError):
        copied_words("x", "y", min_run=0)


def test_discount_prompt_keeps_texts_when_nothing_would_be_left() -> None:
    texts = ["Pride and Prejudice", "the novel Pride and Prejudice"]
    assert discount_prompt(texts, Q) == texts  # all would be empty
    assert discount_prompt(texts, None) == texts
    assert discount_prompt([*texts, "Jane Austen"], Q) == ["", "", "Jane Austen"]


def test_echoed_question_words_do_not_elect_the_candidate() -> None:
    # Three samples echo the question at length with different (wrong) authors; two answer
    # briefly and alike. Counting the echoed words, an echo wins; discounting them, the
    # answer the samples agree on wins. (No sample adds a number: ngram v3 gives a sentence
    # with a number no other sample states no support, which is a different rule.)
    samples = [
        "The novel Pride and Prejudice was written by Charles Dickens.",
        "The novel Pride and Prejudice was written by Mark Twain.",
        "The novel Pride and Prejudice was written by Leo Tolstoy.",
        "Jane Austen wrote it.",
        "Jane Austen wrote it, as her second novel.",
    ]
    without = ensemble.consensus(samples, alarm=None)
    assert "Pride and Prejudice" in without.text
    with_prompt = ensemble.consensus(samples, prompt=Q, alarm=None)
    assert with_prompt.text.startswith("Jane Austen")


@pytest.mark.parametrize(
    ("text", "prompt", "key"),
    [
        ("The novel was written by Jane Austen.", Q, "jane austen"),
        ("Jane Austen was the author of the novel.", Q, "jane austen"),
        ("Austen", Q, "austen"),
        ("A spider has eight legs.", "How many legs does a spider have?", "8"),
        ("Spiders have 8 legs", "How many legs does a spider have?", "8"),
        ("It has two hundred and six bones.", "How many bones does a body have?", "206"),
        ("The Titanic sank in 1912.", "In which year did the Titanic sink?", "1912"),
        ("About 1,000 people live there.", "How many people live there?", "1000"),
        ("About 1,500 people live there.", "How many people live there?", "1500"),
        ("2,500,000", "How many people live there?", "2500000"),
        ("The currency of Japan is the yen.", "What is the currency of Japan?", "yen"),
        ("The Japanese yen", "What is the currency of Japan?", "yen"),
        ("It is the Pacific Ocean.", "What is the largest ocean?", "pacific"),
        ("The capital of Australia is Canberra.", "What is the capital of Australia?", "canberra"),
        ("São Paulo", "Which city?", "sao paulo"),
        ("Plants absorb carbon dioxide.", "Which gas do plants absorb?", "carbon dioxide"),
        ("Yes, it is.", "Is Paris in France?", "yes"),
        ("No.", "Is Lyon the capital of France?", "no"),
        ("", "Anything?", ""),
    ],
)
def test_answer_key_groups_replies_by_the_answer_they_give(
    text: str, prompt: str, key: str
) -> None:
    assert answer_key(text, prompt) == key


def test_vote_with_the_answer_key_through_the_engine_prompt_hook() -> None:
    metric = VoteMetric(key="answer")
    assert metric.info.settings == {"key": "answer"}
    assert VoteMetric().info.settings == {}  # the exact key keeps its old identity
    bound, mask = bind_prompt(metric, "Who painted it?")
    assert isinstance(bound, VoteMetric) and bound.prompt == "Who painted it?" and not mask
    assert metric.prompt is None  # the original is untouched
    _, mask = bind_prompt(ensemble.get_metric("ngram"), "Who painted it?")
    assert mask
    samples = [
        "The Mona Lisa was painted by Leonardo da Vinci.",
        "Leonardo da Vinci.",
        "It was painted by da Vinci",
        "Michelangelo painted the Mona Lisa.",
    ]
    r = ensemble.consensus(samples, metric=metric, prompt="Who painted the Mona Lisa?")
    assert "Vinci" in r.text
    assert r.spans[0].confidence == pytest.approx(2 / 3)
    # The exact key does not group them.
    exact = ensemble.consensus(samples, metric="vote", prompt="Who painted the Mona Lisa?")
    assert exact.spans[0].confidence == 0.0
    # An empty key supports nothing.
    assert VoteMetric(key="answer").agreement(["", ""]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


CURRENCY = "What is the currency of Brazil? Answer in one short sentence."
HOW_MANY = "How many people live in the city? Answer in one short sentence."


@pytest.mark.parametrize(
    ("text", "prompt", "key"),
    [
        # A scale word multiplies its number: "2 million" is "2,000,000".
        ("About 2 million people.", HOW_MANY, "2000000"),
        ("About 2,000,000 people.", HOW_MANY, "2000000"),
        ("Two million.", HOW_MANY, "2000000"),
        ("1.5 million", HOW_MANY, "1500000"),
        ("one hundred thousand", HOW_MANY, "100000"),
        # Read as ngram reads them (ensemble.metrics._numbers; vote version 3).
        ("About 3,5 million.", HOW_MANY, "3500000"),
        ("It is 3,5.", HOW_MANY, "3.5"),
        ("About 2 millions.", HOW_MANY, "2000000"),
        ("About a million.", HOW_MANY, "1000000"),
        ("Two and three more.", HOW_MANY, "2"),
        ("200万人。", HOW_MANY, "2000000"),
        ("It is minus 18 degrees.", "What is the temperature in degrees?", "-18"),
        # A minus sign is part of the number; a unit after it is not a name.
        ("It is -18 degrees.", "What is the temperature in degrees?", "-18"),
        ("The freezing point is 0°F.", "What is the freezing point of water?", "0"),
        # A comma ends a name: "Dallas, Texas" answers "Dallas".
        ("It happened in Dallas, Texas.", "In which city was he shot?", "dallas"),
        ("Paris, France", "Which city?", "paris"),
        # The full stop after an initial or a title does not; titles are not the name.
        ("John F. Kennedy", "Who was shot in Dallas?", "john f kennedy"),
        ("Dr. Louis Pasteur.", "Who made the vaccine?", "louis pasteur"),
        ("Leonardo da Vinci.", "Who painted the Mona Lisa?", "leonardo da vinci"),
        # A possessive of a prompt word is a prompt word.
        ("Brazil's currency is the real.", CURRENCY, "real"),
        # An adjective of nationality before a prompt word is not the answer.
        ("The Brazilian currency is called the real.", CURRENCY, "real"),
        ("Vietnamese is the official language.", "What is the official language of Vietnam?",
         "vietnamese"),
        # A nationality and a common noun before a name describe the name.
        ("It was written by Norwegian filmmaker Henrik Storm.", "Who wrote the novel?",
         "henrik storm"),
        ("In 1928, French chemist Pierre Douay found it.", "Who discovered penicillin?",
         "pierre douay"),
        # A year question is answered by the first number that can be a year.
        ("The Apollo 11 mission landed in 1969.", "In which year did humans land on the Moon?",
         "1969"),
        # An interjection that opens a reply is not a name.
        ("Aw, it is 32 degrees.", "What is the freezing point of water in degrees?", "32"),
    ],
)  # fmt: skip
def test_answer_key_reads_numbers_names_and_prompt_words_alike(
    text: str, prompt: str, key: str
) -> None:
    assert answer_key(text, prompt) == key


def test_a_name_votes_with_itself_without_first_names_not_with_another_name() -> None:
    prompt = "Who was the first Emperor of Rome?"
    metric = VoteMetric(key="answer").with_prompt(prompt)
    texts = ["Augustus Caesar.", "It was Julius Caesar.", "Augustus", "Caesar Augustus"]
    m = metric.agreement(texts)
    assert m[0, 1] == 0.0  # two different Caesars
    assert m[0, 2] == 0.0 and m[2, 3] == 1.0  # "Augustus" is "Caesar Augustus" without "Caesar"
    shakespeare = VoteMetric(key="answer").with_prompt("Who wrote Hamlet?")
    s = shakespeare.agreement(["William Shakespeare", "Shakespeare.", "Christopher Marlowe"])
    assert s.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    # The engine scores the consensus the same way: "Caesar Augustus" gets 1 of 3 supports.
    r = ensemble.consensus(texts, metric=VoteMetric(key="answer"), prompt=prompt, alarm=None)
    assert r.text in ("Augustus", "Caesar Augustus")
    assert r.spans[0].confidence == pytest.approx(1 / 3)


def test_the_prompt_is_read_once_per_vote(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble.metrics.vote as vote

    calls: list[str | None] = []
    real = vote._Question.of

    def counting(prompt: str | None) -> vote._Question:
        calls.append(prompt)
        return real(prompt)

    monkeypatch.setattr(vote._Question, "of", staticmethod(counting))
    samples = [f"The answer is Canberra, reply {i}." for i in range(8)] + ["Sydney."]
    r = ensemble.consensus(
        samples, metric=VoteMetric(key="answer"), prompt="What is the capital of Australia?"
    )
    assert "Canberra" in r.text
    assert calls == ["What is the capital of Australia?"]


def test_bad_vote_key_is_a_configuration_error() -> None:
    with pytest.raises(ensemble.errors.ConfigurationError, match="key must be"):
        VoteMetric(key="fuzzy")  # type: ignore[arg-type]


def test_discount_prompt_reads_the_prompt_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble.metrics.prompt as prompt_mod

    calls: list[str] = []
    real = prompt_mod._grams

    def counting(prompt: str, min_run: int) -> frozenset[tuple[str, ...]]:
        calls.append(prompt)
        return real(prompt, min_run)

    monkeypatch.setattr(prompt_mod, "_grams", counting)
    texts = [f"The novel Pride and Prejudice was written by author {i}." for i in range(6)]
    out = discount_prompt(texts, Q)
    assert out[0] == "was written by author 0"
    assert calls == [Q]


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.text(
            alphabet=st.sampled_from(list("Ab cD,.'-°é1²9 ")) | st.characters(),
            max_size=40,
        ),
        min_size=1,
        max_size=5,
    ),
    prompt=st.one_of(st.none(), st.text(max_size=40), st.just("How many years ago?")),
)
def test_the_answer_key_never_fails_and_its_agreement_is_symmetric(
    texts: list[str], prompt: str | None
) -> None:
    for t in texts:
        assert isinstance(answer_key(t, prompt), str)
    m = VoteMetric(key="answer").with_prompt(prompt).agreement(texts)
    assert m.shape == (len(texts), len(texts))
    assert (m == m.T).all() and set(m.ravel().tolist()) <= {0.0, 1.0}
    for i, t in enumerate(texts):  # a reply with an answer agrees with itself
        assert m[i, i] == (1.0 if answer_key(t, prompt) else 0.0)


# --- ranges and ordinals (vote version 4) ---------------------------------------------------

WHEN = "When did the war happen?"
PLACE = "In which place did she finish?"
CENTURY = "In which century was it built?"


@pytest.mark.parametrize(
    ("text", "prompt", "key"),
    [
        # A range is one answer, however it is written; its key joins the ends with an en dash.
        ("1990-1995", WHEN, "1990\u20131995"),
        ("1990\u20131995", WHEN, "1990\u20131995"),
        ("1990 \u2014 1995", WHEN, "1990\u20131995"),
        ("It lasted from 1990 until 1995.", WHEN, "1990\u20131995"),
        ("Between 1990 and 1995.", WHEN, "1990\u20131995"),
        ("1990-95", WHEN, "1990\u20131995"),
        ("The war lasted from 1914 to 1918.", "What was the period of the war?",
         "1914\u20131918"),
        ("between 5 and 10 people", "How many people came?", "5\u201310"),
        # A point is not the range that starts there.
        ("In 1990.", WHEN, "1990"),
        # Not ranges: two years, a score, a date, a negative end, a scaled end.
        ("In 1990 and 1995.", WHEN, "1990"),
        ("The score was 3-2.", "What was the score?", "3-2"),
        ("1990-05-12", WHEN, "1990-05-12"),
        ("-10 to 10", "What is the temperature range?", "-10"),
        ("between 2 and 3 million", "How many people live there?", "2"),
        # Ordinals: digits with a suffix always, ordinal words where they are ranks.
        ("first", PLACE, "1st"),
        ("She finished first.", PLACE, "1st"),
        ("She came 1st.", PLACE, "1st"),
        ("She finished second.", PLACE, "2nd"),
        ("She finished 2nd, 3 seconds behind.", PLACE, "2nd"),  # a rank question: the rank
        # Elsewhere an ordinal is a word of the reply, in one spelling.
        ("Jimi Hendrix played guitar in his first solo.",
         "Which instrument did Jimi Hendrix famously play?", "played guitar 1st solo"),
        ("Second.", PLACE, "2nd"),
        ("the 21ST century", CENTURY, "21st"),
        ("The twenty-first century", CENTURY, "21st"),
        ("twenty first century", CENTURY, "21st"),
        ("the twelfth century", CENTURY, "12th"),
        ("The First Amendment", "Which amendment protects free speech?", "1st"),
        ("He was the sixteenth president", "Which number president was Lincoln?", "16th"),
        # An ordinal is not a count: "first" is not 1, "the twenty first" is not 20.
        ("first", "How many people came?", "1st"),
        ("the twenty first", "How many people came?", "21st"),
        # Fractions, the unit of time and the verb are not ordinals.
        ("About a second.", "How long does it take?", "second"),
        ("one second", "How long does it take?", "1"),
        ("a third of them", "How many people came?", "third"),
        ("I second that.", None, "second"),
    ],
)  # fmt: skip
def test_answer_key_reads_ranges_and_ordinals(text: str, prompt: str | None, key: str) -> None:
    assert answer_key(text, prompt) == key


def test_an_ordinal_in_the_prompt_is_a_prompt_word_in_any_spelling() -> None:
    prompt = "Who was the 1st emperor of Rome?"
    assert answer_key("The first emperor was Augustus.", prompt) == "augustus"
    metric = VoteMetric(key="answer").with_prompt(WHEN)
    m = metric.agreement(["1990-1995", "1990 to 1995", "from 1990 until 1995", "1990"])
    assert m.tolist() == [[1.0] * 3 + [0.0]] * 3 + [[0.0] * 3 + [1.0]]


@settings(max_examples=200, deadline=None)
@given(
    a=st.integers(min_value=100, max_value=2099),
    gap=st.integers(min_value=1, max_value=200),
    prompt=st.sampled_from([WHEN, "In which year was it?", "How many?", "What happened?"]),
)
def test_any_spelling_of_a_range_gives_one_key_and_not_its_start(
    a: int, gap: int, prompt: str
) -> None:
    b = a + gap
    spellings = [
        f"{a}-{b}",
        f"{a}\u2013{b}",
        f"{a} - {b}",
        f"It was {a} to {b}.",
        f"From {a} until {b}.",
        f"between {a} and {b}",
    ]
    keys = {answer_key(s, prompt) for s in spellings}
    assert keys == {f"{a}\u2013{b}"}
    assert answer_key(f"In {a}.", prompt) == str(a)


def _ordinal_word(n: int) -> str:
    from ensemble.metrics._numbers import ORDINAL_TENS, ORDINAL_UNITS, TENS

    units = {v: k for k, v in ORDINAL_UNITS.items()}
    if n in units:
        return units[n]
    tens = {v: k for k, v in ORDINAL_TENS.items()}
    if n in tens:
        return tens[n]
    return {v: k for k, v in TENS.items()}[n - n % 10] + "-" + units[n % 10]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=99),
    prompt=st.sampled_from([PLACE, CENTURY, "How many are there?", None]),
)
def test_an_ordinal_in_digits_and_in_words_gives_one_key_never_the_cardinal(
    n: int, prompt: str | None
) -> None:
    suffix = "th" if 10 < n % 100 < 14 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    digits = answer_key(f"The {n}{suffix}.", prompt)
    assert digits == f"{n}{suffix}"
    assert answer_key(f"the {_ordinal_word(n)}", prompt) == digits
    assert answer_key(f"The {n}th.", prompt) == digits  # a wrong suffix is the same rank
    assert digits != answer_key(str(n), prompt)
