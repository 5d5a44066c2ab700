"""The facts task shared by nbce and ladder_side_tuning: short paragraphs of random facts
"name=123;name=456;name=789;" and questions "?name=" (answer "123.") or "?a+b=" (answer "123456."), or with
another separator between name and value (nbce: none, "name123;" and "?name"), generated
from a seeded random.Random so every run and test sees the same draws. Two training formats: `training_batch`
(3 facts, one question per row; ladder_side_tuning's) and `reading_batch` (1 to max_facts facts, questions until
the row is full; nbce's)."""

from __future__ import annotations

import random
import string

import torch

FACTS_PER_PARAGRAPH = 3


def random_fact(rng: random.Random, taken: set) -> tuple[str, str]:
    while True:
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(4))
        if name not in taken:
            taken.add(name)
            return name, "".join(rng.choice(string.digits) for _ in range(3))


def paragraph(facts, separator: str = "=") -> str:
    return "".join(f"{n}{separator}{v};" for n, v in facts) + "\n"


def training_batch(rng: random.Random, batch: int, unanswerable: float = 0.0,
                   separator: str = "=") -> tuple[torch.Tensor, torch.Tensor]:
    """Paragraph + question + answer per row, padded with 0; the mask marks the answer's bytes.
    unanswerable: the fraction of rows asking for a name the paragraph does not hold, answered with a fresh
    random value (which the paragraph cannot predict), so that a model learns to be unsure without the fact,
    as an LLM is about a context that does not concern the question."""
    rows, masks = [], []
    for _ in range(batch):
        taken: set = set()
        facts = [random_fact(rng, taken) for _ in range(FACTS_PER_PARAGRAPH)]
        if unanswerable and rng.random() < unanswerable:
            n, v = random_fact(rng, taken)
            prompt, answer = f"?{n}{separator}", f"{v}."
        elif rng.random() < 0.5:
            (n, v), = rng.sample(facts, 1)
            prompt, answer = f"?{n}{separator}", f"{v}."
        else:
            (n1, v1), (n2, v2) = rng.sample(facts, 2)
            prompt, answer = f"?{n1}+{n2}{separator}", f"{v1}{v2}."
        text = (paragraph(facts, separator) + prompt + answer).encode()
        rows.append(list(text))
        masks.append([0] * (len(text) - len(answer)) + [1] * len(answer))
    width = max(map(len, rows))
    tokens = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.bool)
    return tokens, mask


def reading_batch(rng: random.Random, batch: int, unanswerable: float = 0.0, max_facts: int = 5,
                  max_length: int = 64, separator: str = "=") -> tuple[torch.Tensor, torch.Tensor]:
    """Rows that teach reading a paragraph rather than copying from it: 1 to `max_facts` facts, then questions
    (single, coupled "?a+b=" where two facts exist, or with probability `unanswerable` a name the paragraph lacks
    with a fresh random answer) for as long as they fit in `max_length` bytes (at least one); the mask marks
    every answer's bytes. Why: with 3 facts and one question per row, a model that copies *any* value of its
    paragraph is right a third of the time, and nbce's base sat on that plateau (25% after 6000 steps,
    measured); with 1 to 5 facts copying pays less and each row carries several answers."""
    rows, masks = [], []
    for _ in range(batch):
        taken: set = set()
        facts = [random_fact(rng, taken) for _ in range(rng.randint(1, max_facts))]
        text = paragraph(facts, separator)
        mask = [0] * len(text)
        while True:
            if unanswerable and rng.random() < unanswerable:
                n, v = random_fact(rng, taken)
                prompt, answer = f"?{n}{separator}", f"{v}."
            elif len(facts) >= 2 and rng.random() < 0.5:
                (n1, v1), (n2, v2) = rng.sample(facts, 2)
                prompt, answer = f"?{n1}+{n2}{separator}", f"{v1}{v2}."
            else:
                (n, v), = rng.sample(facts, 1)
                prompt, answer = f"?{n}{separator}", f"{v}."
            if len(text) + len(prompt) + len(answer) > max_length and any(mask):
                break  # full (a row always gets one question, even past max_length)
            text += prompt + answer
            mask += [0] * len(prompt) + [1] * len(answer)
        rows.append(list(text.encode()))
        masks.append(mask)
    width = max(map(len, rows))
    tokens = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return tokens, torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.bool)


def copy_batch(generator: torch.Generator, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of random lowercase letters in which a stretch of 6-16 letters (fewer in short rows) comes again at a
    random later offset; the mask marks the repeat after its first letter. The offset varies, so only in-context
    copying (find the earlier occurrence, copy what followed it) predicts the masked bytes: the mechanism reading
    a fact needs, which nbce's small base lacked (0.03 on a repeated string, chance 0.04, measured)."""
    longest = min(16, (length - 1) // 2)  # both occurrences and a gap fit in the row
    if longest < 2:
        raise ValueError(f"copy_batch needs rows of at least 5 bytes, got {length}")
    tokens = torch.randint(ord("a"), ord("z") + 1, (batch, length), generator=generator)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    for row in range(batch):
        m = int(torch.randint(min(6, longest), longest + 1, (1,), generator=generator))
        a = int(torch.randint(0, length - 2 * m, (1,), generator=generator))
        b = int(torch.randint(a + m + 1, length - m + 1, (1,), generator=generator))
        tokens[row, b:b + m] = tokens[row, a:a + m]
        mask[row, b + 1:b + m] = True
    return tokens, mask


def stack_rows(*parts: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, mask) batches of different widths as one, padded with 0 and masked out."""
    width = max(t.shape[1] for t, _ in parts)
    pad = lambda x: torch.nn.functional.pad(x, (0, width - x.shape[1]))  # noqa: E731
    return torch.cat([pad(t) for t, _ in parts]), torch.cat([pad(m) for _, m in parts])


def test_case(rng: random.Random, n: int, coupled: str | None = None, facts: int = FACTS_PER_PARAGRAPH,
              separator: str = "="):
    """(paragraphs, prompt, answer): n paragraphs of `facts` facts, the asked fact(s) in one (or, coupled='split',
    in two)."""
    taken: set = set()
    paragraphs = [[random_fact(rng, taken) for _ in range(facts)] for _ in range(n)]
    if coupled is None:
        k = rng.randrange(n)
        name, value = rng.choice(paragraphs[k])
        return [paragraph(p, separator) for p in paragraphs], f"?{name}{separator}", value
    if coupled == "same":
        (n1, v1), (n2, v2) = rng.sample(paragraphs[rng.randrange(n)], 2)
    else:
        k1, k2 = rng.sample(range(n), 2)
        (n1, v1), (n2, v2) = rng.choice(paragraphs[k1]), rng.choice(paragraphs[k2])
    return [paragraph(p, separator) for p in paragraphs], f"?{n1}+{n2}{separator}", v1 + v2
