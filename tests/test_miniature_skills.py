"""The miniature LLM's text skills (groundinggpt.miniature.skills): each chat's answer is right by construction."""

from __future__ import annotations

import re

import numpy as np
import pytest

from groundinggpt.miniature import skills
from groundinggpt.miniature.skills import EMPTY, GRID, SKILLS, skill_examples, skills_corpus


def _grid_of(question: str) -> list[list[str]]:
    words = question.split("row by row: ")[1].split(".")[0].split()
    assert len(words) == GRID * GRID
    return [words[r * GRID:(r + 1) * GRID] for r in range(GRID)]


def test_grid_answers_are_the_named_cells_box_in_fractions_of_the_grid():
    rng = np.random.default_rng(0)
    for _ in range(60):
        [(question, answer)] = skills.grid(rng)
        cells = _grid_of(question)
        name, box = re.fullmatch(r"(the \w+(?: one)?)\[(.*)\]", answer).groups()
        x1, y1, x2, y2 = (float(v) for v in box.split(", "))
        assert question.endswith(f"Output the coordinate of {name}.")
        if name.endswith(" one"):
            word = name.split()[1]
        else:  # named by its shape: the legend says which colour word the cells hold
            shape = name.split()[1]
            word = re.search(rf"The (\w+) one is a {shape}\.", question).group(1)
        rows = [r for r in range(GRID) if word in cells[r]]
        cols = [c for c in range(GRID) if any(cells[r][c] == word for r in range(GRID))]
        assert (x1, y1, x2, y2) == (min(cols) / GRID, min(rows) / GRID, (max(cols) + 1) / GRID, (max(rows) + 1) / GRID)
        inside = [cells[r][c] for r in range(min(rows), max(rows) + 1) for c in range(min(cols), max(cols) + 1)]
        assert set(inside) == {word}  # a solid rectangle of one word
        assert {w for row in cells for w in row} - {EMPTY} and EMPTY in {w for row in cells for w in row}


def test_a_grid_is_64_tokens_one_per_cell_as_the_miniatures_image_tokens():
    from groundinggpt.miniature import miniature_processor

    processor = miniature_processor()
    tok = processor.tokenizer
    [(question, _)] = skills.grid(np.random.default_rng(3))
    grid_text = " " + " ".join(w for row in _grid_of(question) for w in row)
    assert len(tok(grid_text, add_special_tokens=False)["input_ids"]) == GRID * GRID == processor.config.image_seq_length


@pytest.mark.parametrize("seed", range(5))
def test_recall_sequence_order_and_formats_answer_right(seed):
    rng = np.random.default_rng(seed)
    [(q, a)] = skills.recall(rng)
    facts = dict((f"{c} {s}", v) for c, s, v in re.findall(r"The (\w+) (\w+) has ([\d.]+)\.", q))
    asked = re.search(r"What number does the (.+) have\?", q).group(1)
    matches = [v for k, v in facts.items() if asked in (k, k.split()[0] + " one", k.split()[1])]
    assert matches == [a]
    [(q, a)] = skills.sequence(rng)
    n, row = re.search(r"A row of (\d+) words: ([a-z ]+)\.", q).groups()
    row = row.split()
    word = re.search(r"(?:run of|does) (\w+) ", q).group(1)
    where = [i for i, w in enumerate(row) if w == word]
    assert len(row) == int(n) and a == "{" + f"{where[0] / len(row):.2f}, {(where[-1] + 1) / len(row):.2f}" + "}"
    [(q, a)] = skills.order(rng)
    assert a in q.lower() and a.startswith("the ")
    [(q, a)] = skills.formats(rng)
    numbers = [float(v) for v in re.findall(r"\d+(?:\.\d+)?", q)]
    assert [float(v) for v in re.findall(r"\d\.\d+", a)] == pytest.approx(
        [numbers[0], numbers[2], numbers[1], numbers[3]] if a.startswith("[") else numbers)


def test_order_answers_the_earlier_span_or_the_box_further_left_or_higher():
    rng = np.random.default_rng(11)
    for _ in range(40):
        [(q, a)] = skills.order(rng)
        names = re.findall(r"the \w+ \w+", q.lower())[:2]
        numbers = re.findall(r"[\[{]([\d., ]+)[\]}]", q)
        first, second = ([float(v) for v in n.split(", ")] for n in numbers)
        if "comes first" in q:
            expect = names[0] if first[0] < second[0] else names[1]
        elif "further left" in q:
            expect = names[0] if first[0] < second[0] else names[1]
        else:
            expect = names[0] if first[1] < second[1] else names[1]
        assert a == expect, q


def test_corpus_streams_are_deterministic_disjoint_and_cover_every_skill():
    a, b = skills_corpus(40, stream=0), skills_corpus(40, stream=0)
    assert a == b and a != skills_corpus(40, stream=1)
    examples = skill_examples()
    assert set(examples) == set(SKILLS) and abs(sum(v["share"] for v in examples.values()) - 1) < 1e-9
    for name, entry in examples.items():
        question, answer = entry["example"]
        assert question and answer, name


def test_skill_accuracy_scores_exact_answers_on_held_out_chats_disjoint_from_training():
    n = 6
    held = {name: skills.held_out_chats(name, n) for name in SKILLS}
    oracle = {q: a for pairs in held.values() for q, a in pairs}
    assert skills.skill_accuracy(oracle.get, n=n) == {name: 1.0 for name in SKILLS}
    assert skills.skill_accuracy(lambda q: "  " + oracle[q] + "\n", n=n)["recall"] == 1.0  # surrounding space
    assert skills.skill_accuracy(lambda q: "0.5", n=n) == {name: 0.0 for name in SKILLS}
    # Half right: exactly half of each skill's chats answered.
    first_half = {q for pairs in held.values() for q, _ in pairs[: n // 2]}
    half = skills.skill_accuracy(lambda q: oracle[q] if q in first_half else "", n=n)
    assert half == {name: 0.5 for name in SKILLS}
    training = {q for q, _ in (turn for chat in skills_corpus(300) for turn in chat)}
    assert not training & set(oracle)


def test_greedy_answerer_answers_with_the_llm_in_the_chat_template():
    import torch

    from groundinggpt.miniature import build_miniature
    from groundinggpt.miniature.pretrain import greedy_answerer

    model, processor = build_miniature(seed=0, load=())
    llm = model.language_model.train()
    answer = greedy_answerer(llm, processor, max_new_tokens=5)
    question = skills.held_out_chats("formats", 1)[0][0]
    text = answer(question)
    assert llm.training  # the caller's mode is kept
    ids = processor([{"role": "user", "content": question}], add_generation_prompt=True)["input_ids"]
    with torch.no_grad():
        expected = llm.eval().generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                                       do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    assert text == processor.tokenizer.decode(expected[0, ids.shape[1]:], skip_special_tokens=True)
    assert isinstance(text, str)
