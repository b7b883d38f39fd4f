"""Post-training data generated in code: instructions, preference pairs and a fact store.

Everything here is small enough for a tiny character-level GPT and uses only characters of
Tiny Shakespeare (lower- and upper-case letters, space, newline and ``:,.?``; numbers are
spelled out), so a model pre-trained on that corpus can be fine-tuned on it without new tokens.

* :func:`instruction_dataset`: ``(prompt, response)`` examples of a few string tasks
  (reverse a word, upper-case it, its first or last letter, its length, the longer of two
  words, the opposite of a word, a word said twice), each in one fixed format::

      prompt   "Q: reverse: lamp\\nA: "
      response "pmal\\n"

  The test split holds words that the training split never uses: a word's side is decided by
  a fixed hash of the word, so it is the same for every seed.
* :func:`encode_sft`: token ids and prompt-masked next-token targets (``-100`` on the prompt
  and the padding), the inputs of supervised fine-tuning; :func:`encode_texts` pads whole
  texts and gives their lengths (the inputs of a reward model).
* :func:`preference_pairs`: for each example a correct (*chosen*) and a plausible wrong
  (*rejected*) response, the data of reward modelling and DPO.
* :func:`fact_qa`: random facts ("the key of the red door is kept by anne.") with a question
  each. The names are drawn at random, so no model can know them: a model answers only by
  copying from a fact placed in its prompt (:meth:`Fact.with_context`), the set-up of
  retrieval-augmented generation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from coursekit.data.batching import pad_sequences
from coursekit.data.corpora import _bucket
from coursekit.tokenize import Tokenizer

__all__ = [
    "ANTONYMS",
    "INSTRUCTION_TASKS",
    "WORDS",
    "Fact",
    "Instruction",
    "PreferencePair",
    "SFTBatch",
    "encode_preferences",
    "encode_sft",
    "encode_texts",
    "fact_qa",
    "format_prompt",
    "instruction_dataset",
    "is_held_out",
    "preference_pairs",
    "rag_prompt",
]

IGNORE_INDEX = -100

# ---- vocabularies (lower-case letters only) ----------------------------------------------------
WORDS: tuple[str, ...] = tuple(
    """
    anchor apple arrow badge baker basket beach berry blade board boat bottle bread brick
    bridge brush bucket butter button cabin cactus camel candle canvas carpet castle chair
    cheese cherry circle cloud coast collar copper corner cotton crane desert dinner donkey
    dragon drum eagle engine falcon feather fence field finger flame flower forest fox frog
    garden glass glove goat grape guitar hammer harbor helmet honey horse island jacket jewel
    kettle kitten ladder lamp lantern leaf lemon lion magnet marble meadow melon mirror monkey
    needle nest ocean orange oven owl paddle palace panda paper parrot pearl pebble pencil
    pepper piano pillow planet plum pocket pond potato puppet puzzle rabbit radio ribbon river
    robin rocket saddle salad sandal shadow shell shovel silver sock spider spoon stone storm
    sugar table thunder tiger timber tomato tulip tunnel turtle valley velvet violin wagon
    walnut whale window winter wolf yarn zebra
    """.split()
)
"""The words of the single-word tasks (3 to 7 letters)."""

ANTONYMS: tuple[tuple[str, str], ...] = (
    ("good", "bad"),
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("high", "low"),
    ("old", "young"),
    ("happy", "sad"),
    ("light", "dark"),
    ("rich", "poor"),
    ("early", "late"),
    ("open", "shut"),
    ("hard", "soft"),
    ("loud", "quiet"),
    ("full", "empty"),
    ("long", "short"),
    ("wet", "dry"),
    ("strong", "weak"),
    ("thick", "thin"),
    ("clean", "dirty"),
    ("true", "false"),
    ("wide", "narrow"),
    ("love", "hate"),
    ("win", "lose"),
    ("first", "last"),
    ("above", "below"),
    ("push", "pull"),
    ("buy", "sell"),
    ("near", "far"),
    ("sweet", "sour"),
    ("day", "night"),
    ("black", "white"),
    ("up", "down"),
    ("friend", "foe"),
    ("sharp", "blunt"),
    ("laugh", "weep"),
    ("east", "west"),
)
"""Pairs of opposites (asked both ways); none of these words is in :data:`WORDS`."""

NUMBER_WORDS: tuple[str, ...] = tuple(
    "zero one two three four five six seven eight nine ten eleven twelve".split()
)

# ---- the held-out split -----------------------------------------------------------------------
TEST_FRACTION = 0.2
_SPLIT_SALT = 17  # fixed: the split must not depend on the seed of a data set


def is_held_out(unit: str) -> bool:
    """Whether a word (or an antonym pair ``"good bad"``) belongs to the test split.

    A fixed hash of the string puts about ``TEST_FRACTION`` of them in the test split; the
    answer is the same on every machine and for every seed.
    """
    return _bucket(unit, _SPLIT_SALT) < TEST_FRACTION


# ---- the tasks --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    """One instruction example: the ``prompt`` the model reads and the ``response`` it should
    write (ending with ``"\\n"``), the ``task`` it comes from and the ``words`` it is built on
    (the unit of the train/test split)."""

    task: str
    prompt: str
    response: str
    words: tuple[str, ...] = ()


def format_prompt(question: str) -> str:
    """The one prompt format: ``"Q: {question}\\nA: "``."""
    return f"Q: {question}\nA: "


def _number(n: int) -> str:
    return NUMBER_WORDS[n]


def _longer(a: str, b: str) -> tuple[str, str]:
    return f"which is longer, {a} or {b}?", a if len(a) > len(b) else b


# task name -> (how many words, words -> (question, answer)); the antonym task is separate
_WORD_TASKS: dict[str, tuple[int, Callable[..., tuple[str, str]]]] = {
    "reverse": (1, lambda w: (f"reverse: {w}", w[::-1])),
    "uppercase": (1, lambda w: (f"uppercase: {w}", w.upper())),
    "first_letter": (1, lambda w: (f"first letter of: {w}", w[0])),
    "last_letter": (1, lambda w: (f"last letter of: {w}", w[-1])),
    "length": (1, lambda w: (f"how many letters in: {w}?", _number(len(w)))),
    "repeat": (1, lambda w: (f"say twice: {w}", f"{w} {w}")),
    "longer": (2, _longer),
}
INSTRUCTION_TASKS: tuple[str, ...] = (*_WORD_TASKS, "antonym")
"""The task names :func:`instruction_dataset` knows."""


def _split_words(split: str) -> list[str]:
    return [w for w in WORDS if is_held_out(w) == (split == "test")]


def _split_antonyms(split: str) -> list[tuple[str, str]]:
    pairs = [p for p in ANTONYMS if is_held_out(" ".join(p)) == (split == "test")]
    return pairs + [(b, a) for a, b in pairs]  # asked both ways


def _check_tasks(tasks: Sequence[str] | None) -> list[str]:
    if tasks is None:
        return list(INSTRUCTION_TASKS)
    if isinstance(tasks, str):
        tasks = [tasks]
    chosen = list(dict.fromkeys(tasks))
    if not chosen:
        raise ValueError(f"tasks is empty: pick some of {', '.join(INSTRUCTION_TASKS)}.")
    unknown = [t for t in chosen if t not in INSTRUCTION_TASKS]
    if unknown:
        raise ValueError(
            f"unknown instruction task(s) {', '.join(map(repr, unknown))}: "
            f"the tasks are {', '.join(INSTRUCTION_TASKS)}."
        )
    return chosen


def _make(
    task: str, words: list[str], antonyms: list[tuple[str, str]], rng: random.Random
) -> Instruction:
    if task == "antonym":
        a, b = rng.choice(antonyms)
        return Instruction(task, format_prompt(f"opposite of: {a}"), f"{b}\n", (a, b))
    n_words, make = _WORD_TASKS[task]
    picked = rng.sample(words, n_words)
    while n_words == 2 and len(picked[0]) == len(picked[1]):  # "longer" needs a clear answer
        picked = rng.sample(words, n_words)
    question, answer = make(*picked)
    return Instruction(task, format_prompt(question), f"{answer}\n", tuple(picked))


def instruction_dataset(
    n: int, *, seed: int = 0, tasks: Sequence[str] | None = None, split: str = "train"
) -> list[Instruction]:
    """``n`` instruction examples, the tasks taking turns (then shuffled), reproducible by seed.

    ``tasks``: names from :data:`INSTRUCTION_TASKS` (default: all). ``split``: ``"train"`` or
    ``"test"``; the test split uses only held-out words (:func:`is_held_out`), which no
    training example contains, whatever the seeds. Words are drawn with replacement across
    examples, so a large ``n`` repeats examples.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"instruction_dataset: n must be a positive integer, got {n!r}.")
    if split not in ("train", "test"):
        raise ValueError(f"instruction_dataset: split must be 'train' or 'test', got {split!r}.")
    chosen = _check_tasks(tasks)
    rng = random.Random(f"instructions-{seed}")
    words, antonyms = _split_words(split), _split_antonyms(split)
    examples = [_make(chosen[i % len(chosen)], words, antonyms, rng) for i in range(n)]
    rng.shuffle(examples)
    return examples


# ---- encoding ---------------------------------------------------------------------------------
class SFTBatch(NamedTuple):
    """Inputs of supervised fine-tuning.

    * ``ids`` ``(B, T)``: prompt + response without its last token, right-padded;
    * ``targets`` ``(B, T)``: the next token at each position, ``-100`` where that token is
      part of the prompt or padding, so a loss over ``targets`` trains only the responses.
    """

    ids: torch.Tensor
    targets: torch.Tensor


def _pairs(examples: Sequence[Instruction | tuple[str, str]], who: str) -> list[tuple[str, str]]:
    if len(examples) == 0:
        raise ValueError(f"{who}: no examples given.")
    return [(e.prompt, e.response) if isinstance(e, Instruction) else e for e in examples]


def _check_block_size(block_size: int, who: str) -> None:
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"{who}: block_size must be a positive integer, got {block_size!r}.")


def encode_sft(
    examples: Sequence[Instruction | tuple[str, str]],
    tokenizer: Tokenizer,
    block_size: int,
    *,
    pad_id: int = 0,
) -> SFTBatch:
    """Encode ``(prompt, response)`` examples for supervised fine-tuning (see :class:`SFTBatch`).

    For the token sequence ``s = prompt + response`` (``P`` prompt and ``R`` response tokens),
    ``ids = s[:-1]`` and ``targets[t] = s[t + 1]`` if token ``t + 1`` is a response token, else
    ``-100``: the first ``P - 1`` targets are masked, the last ``R`` are the response. Rows are
    right-padded to the longest (``pad_id`` in ``ids``, ``-100`` in ``targets``; with a causal
    model, padding after a sequence never changes it). Both are ``(B, T)`` long tensors with
    ``T = max(P + R) - 1 <= block_size``; a longer example is an error, not cut.
    """
    who = "encode_sft"
    _check_block_size(block_size, who)
    rows: list[list[int]] = []
    masked: list[list[int]] = []
    for i, (prompt, response) in enumerate(_pairs(examples, who)):
        p, r = tokenizer.encode(prompt), tokenizer.encode(response)
        if not p or not r:
            raise ValueError(
                f"{who}: example {i} has an empty {'prompt' if not p else 'response'}: the first "
                "response token is predicted from the prompt, so both need at least one token."
            )
        if len(p) + len(r) - 1 > block_size:
            raise ValueError(
                f"{who}: example {i} needs {len(p) + len(r) - 1} positions (prompt {len(p)} + "
                f"response {len(r)} - 1) but block_size is {block_size}: raise block_size or "
                "shorten the example (cutting it would drop response tokens)."
            )
        seq = p + r
        rows.append(seq[:-1])
        masked.append([IGNORE_INDEX] * (len(p) - 1) + r)
    return SFTBatch(pad_sequences(rows, pad_id), pad_sequences(masked, IGNORE_INDEX))


def encode_texts(
    texts: Sequence[str], tokenizer: Tokenizer, block_size: int, *, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole texts as right-padded ids ``(B, T)`` and their lengths ``(B,)`` (a reward model
    reads each text's last real token); a text longer than ``block_size`` is an error."""
    who = "encode_texts"
    _check_block_size(block_size, who)
    if len(texts) == 0:
        raise ValueError(f"{who}: no texts given.")
    rows = [tokenizer.encode(t) for t in texts]
    for i, row in enumerate(rows):
        if not 1 <= len(row) <= block_size:
            raise ValueError(
                f"{who}: text {i} has {len(row)} tokens; each needs 1..block_size={block_size}."
            )
    return pad_sequences(rows, pad_id), torch.tensor([len(r) for r in rows])


# ---- preference pairs -------------------------------------------------------------------------
@dataclass(frozen=True)
class PreferencePair:
    """One prompt with a preferred (``chosen``) and a dispreferred (``rejected``) response."""

    task: str
    prompt: str
    chosen: str
    rejected: str

    @property
    def chosen_text(self) -> str:
        return self.prompt + self.chosen

    @property
    def rejected_text(self) -> str:
        return self.prompt + self.rejected


def _corrupt(response: str, rng: random.Random) -> str:
    """``response`` with one letter changed to another letter of the same case."""
    body, end = (response[:-1], "\n") if response.endswith("\n") else (response, "")
    letters = [i for i, c in enumerate(body) if c.isalpha()]
    if not letters:
        return body + "x" + end
    i = rng.choice(letters)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    new = rng.choice([c for c in alphabet if c != body[i].lower()])
    new = new.upper() if body[i].isupper() else new
    return body[:i] + new + body[i + 1 :] + end


def preference_pairs(examples: Sequence[Instruction], seed: int = 0) -> list[PreferencePair]:
    """One :class:`PreferencePair` per example: chosen = its response; rejected = a plausible
    wrong one, either the response of another example of the same task (about half the
    time, when one differs) or the correct response with one letter changed. Reproducible
    by seed; ``rejected != chosen`` always."""
    if len(examples) == 0:
        raise ValueError("preference_pairs: no examples given.")
    rng = random.Random(f"preferences-{seed}")
    by_task: dict[str, list[str]] = {}
    for e in examples:
        by_task.setdefault(e.task, [])
        if e.response not in by_task[e.task]:
            by_task[e.task].append(e.response)
    pairs = []
    for e in examples:
        others = [r for r in by_task[e.task] if r != e.response]
        rejected = (
            rng.choice(others) if others and rng.random() < 0.5 else _corrupt(e.response, rng)
        )
        pairs.append(PreferencePair(e.task, e.prompt, e.response, rejected))
    return pairs


def encode_preferences(
    pairs: Sequence[PreferencePair], tokenizer: Tokenizer, block_size: int, *, pad_id: int = 0
) -> tuple[SFTBatch, SFTBatch]:
    """:func:`encode_sft` of the chosen and of the rejected responses (row i of each is pair
    i): the inputs of :func:`coursekit.align.sequence_logprob` for DPO."""
    if len(pairs) == 0:
        raise ValueError("encode_preferences: no pairs given.")
    chosen = encode_sft([(p.prompt, p.chosen) for p in pairs], tokenizer, block_size, pad_id=pad_id)
    rejected = encode_sft(
        [(p.prompt, p.rejected) for p in pairs], tokenizer, block_size, pad_id=pad_id
    )
    return chosen, rejected


# ---- a fact store for retrieval ---------------------------------------------------------------
FACT_OBJECTS = ("key", "ring", "book", "coin", "map", "cup", "sword", "letter", "crown", "seal")
FACT_COLOURS = ("red", "blue", "green", "white", "black", "gold", "grey", "brown")
FACT_PLACES = ("door", "tower", "house", "ship", "garden", "gate", "hall", "chest")
FACT_NAMES: tuple[str, ...] = tuple(
    """
    anne bess clare edmund hugh kate mary paul ralph tom will ned jane rose lucy giles
    maud peter alice simon joan robin agnes walter
    """.split()
)
MAX_FACTS = len(FACT_OBJECTS) * len(FACT_COLOURS) * len(FACT_PLACES)


@dataclass(frozen=True)
class Fact:
    """One fact of the store: its ``text``, a ``question`` about it and the ``answer`` (a name
    that appears in the text)."""

    text: str
    question: str
    answer: str

    def with_context(self, passages: Sequence[str] = ()) -> Instruction:
        """The question as an :class:`Instruction` whose prompt first lists ``passages``
        (see :func:`rag_prompt`; none = closed book)."""
        return Instruction("fact", rag_prompt(self.question, passages), f"{self.answer}\n")


def rag_prompt(question: str, passages: Sequence[str] = ()) -> str:
    """Retrieved ``passages``, one a line, then the question in the one prompt format::

    "the key of the red door is kept by anne.\\nQ: who keeps the key of the red door?\\nA: "
    """
    return "".join(f"{p}\n" for p in passages) + format_prompt(question)


def fact_qa(n_facts: int, seed: int = 0) -> list[Fact]:
    """``n_facts`` random facts "the {object} of the {colour} {place} is kept by {name}.", each
    with the question "who keeps the {object} of the {colour} {place}?".

    Every (object, colour, place) is used at most once in a store (at most :data:`MAX_FACTS`
    facts), so each question has one answer in it; the names are drawn at random per seed.
    """
    if not isinstance(n_facts, int) or isinstance(n_facts, bool) or not 1 <= n_facts <= MAX_FACTS:
        raise ValueError(f"fact_qa: n_facts must be an integer in 1..{MAX_FACTS}, got {n_facts!r}.")
    rng = random.Random(f"facts-{seed}")
    keys = [(o, c, p) for o in FACT_OBJECTS for c in FACT_COLOURS for p in FACT_PLACES]
    facts = []
    for obj, colour, place in rng.sample(keys, n_facts):
        thing = f"the {obj} of the {colour} {place}"
        name = rng.choice(FACT_NAMES)
        facts.append(Fact(f"{thing} is kept by {name}.", f"who keeps {thing}?", name))
    return facts
