"""Hostile files handed to the readers: deep nesting, pickle memo bombs, non-finite coordinates.

Each must end in the reader's usual error naming the file (and line), quickly and in
bounded memory, never in an uncaught RecursionError or a silent acceptance.
"""

from __future__ import annotations

import json
import pickle
import time

import pytest

from groundinggpt import jsonsafe
from groundinggpt.data import DataError, read_jsonl
from groundinggpt.eval import formats as f
from groundinggpt.grounding import invalid_coordinates

DEEP = "[" * 100_000  # json's C scanner recurses once per "["


def _sample(i: int = 0, answer: str = "[0.1, 0.2, 0.5, 0.9]") -> dict:
    return {"id": f"s{i}", "task": "rec",
            "messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"},
                                                      {"type": "text", "text": "Where is the cat?"}]},
                         {"role": "assistant", "content": answer}]}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ---- item 10: deep nesting ---------------------------------------------------------------


def test_jsonsafe_names_the_column_where_nesting_goes_too_deep():
    with pytest.raises(jsonsafe.NestingError) as err:
        jsonsafe.loads('{"a": "[[[[", "b": ' + DEEP)  # brackets inside a string do not count
    assert err.value.msg == f"arrays/objects nested more than {jsonsafe.MAX_DEPTH} deep"
    assert err.value.colno == len('{"a": "[[[[", "b": ') + jsonsafe.MAX_DEPTH
    # valid JSON that Python parses, but deeper than the limit: refused too
    with pytest.raises(jsonsafe.NestingError):
        jsonsafe.loads(_nested(jsonsafe.MAX_DEPTH + 1))
    assert jsonsafe.loads(_nested(jsonsafe.MAX_DEPTH)) is not None
    assert jsonsafe.loads("[" + "[], " * 500 + "[]]") == [[]] * 501  # many brackets, shallow
    assert isinstance(jsonsafe.NestingError("m", "d", 0), json.JSONDecodeError)  # readers catch it


def test_training_data_nested_too_deep_is_named_at_its_line(tmp_path):
    path = tmp_path / "train.jsonl"
    deep_meta = {**_sample(2), "meta": {"x": json.loads(_nested(300))}}  # parses in Python; still refused
    path.write_text("\n".join([json.dumps(_sample(0)), DEEP, json.dumps(deep_meta), json.dumps(_sample(3))]) + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    # line 3: the sample object and its meta are 2 levels, so the 99th "[" of x is the 101st level
    column = json.dumps(deep_meta).index("[[[") + 99
    assert err.value.errors == [
        f"{path}:2: invalid JSON (arrays/objects nested more than 100 deep at column 101)",
        f"{path}:3: invalid JSON (arrays/objects nested more than 100 deep at column {column})",
    ]


def test_predictions_and_annotation_files_nested_too_deep(tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text('{"id": 1, "answer": "a"}\n' + DEEP + "\n")
    with pytest.raises(f.FormatError, match=r"preds\.jsonl:2: not a JSON object \(arrays/objects nested more"):
        f.read_predictions(preds)
    refs = tmp_path / "refs(unc).p"
    refs.write_bytes(pickle.dumps([{"ref_id": 1}], protocol=2))
    instances = tmp_path / "instances.json"
    instances.write_text('{"images": ' + DEEP)
    with pytest.raises(f.FormatError, match=r"instances\.json: not valid JSON \(arrays/objects nested more than "
                                            r"100 deep: line 1 column 111"):
        f.read_refcoco(refs, instances)
    pope = tmp_path / "pope.json"
    pope.write_text(DEEP)
    with pytest.raises(f.FormatError, match=r"pope\.json:1: not a JSON object"):
        f.read_pope(pope)


def test_a_recipe_nested_too_deep_is_a_recipe_error(tmp_path):
    from groundinggpt.train.recipe import RecipeError, load_recipe, parse_value

    recipe = tmp_path / "deep.yaml"
    recipe.write_text("training:\n  x: " + "[" * 20_000 + "\n")
    with pytest.raises(RecipeError, match=r"deep\.yaml: invalid YAML \(lists/mappings nested too deep\)"):
        load_recipe(recipe)
    with pytest.raises(RecipeError, match="nested too deep"):
        parse_value("[" * 20_000)


def _nested_list_pickle(depth: int) -> bytes:
    # EMPTY_LIST x depth, then APPEND x (depth - 1): [[[...]]] without pickle.dumps recursing
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def test_a_deeply_nested_refs_pickle_is_refused(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(_nested_list_pickle(100_000))
    with pytest.raises(f.FormatError, match=r"refs\(unc\)\.p: lists/dicts nested more than 32 deep"):
        f.load_refs_pickle(path)


# ---- item 9: the pickle memo bomb ----------------------------------------------------------


def test_a_refs_pickle_memo_bomb_is_refused_quickly(tmp_path):
    bomb = []
    for _ in range(24):  # each level holds the one below twice: 2**25 lists once expanded
        bomb = [bomb, bomb]
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(bomb, protocol=2))
    assert len(path.read_bytes()) < 250
    t = time.process_time()
    with pytest.raises(f.FormatError, match=r"refs\(unc\)\.p: the pickle reaches more than \d+ objects from its "
                                            r"\d+ bytes, so it shares containers \(a 'memo bomb'\)"):
        f.load_refs_pickle(path)
    assert time.process_time() - t < 2  # the walk stops at the budget (~200 objects), not at 33 million


def test_refs_pickle_budget_bytes_and_structure_messages(tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1}, [1, 2]], protocol=2))
    with pytest.raises(f.FormatError, match=r"expected a pickled list of ref dicts; item 1 is a list"):
        f.load_refs_pickle(path)
    path.write_bytes(pickle.dumps("refs", protocol=2))
    with pytest.raises(f.FormatError, match=r"expected a pickled list of ref dicts, got a str"):
        f.load_refs_pickle(path)
    refs = [{"ref_id": i, "sentences": [{"sent": "the cat", "tokens": ["the", "cat"]}]} for i in range(50)]
    path.write_bytes(pickle.dumps(refs, protocol=2))
    assert f.load_refs_pickle(path) == refs  # shared strings (memoised keys) are within budget
    with pytest.raises(f.FormatError, match=r"bytes, more than the 100 a refs\(<splitBy>\)\.p file may have"):
        f.load_refs_pickle(path, max_bytes=100)


# ---- item 13: non-finite coordinates in training answers ------------------------------------


@pytest.mark.parametrize("answer, shown", [
    ("[nan, 0.1, 0.2, 0.3]", "box [nan, 0.1, 0.2, 0.3]"),
    ("the cat[0.1, 0.2, Infinity, 0.9]", "box [0.1, 0.2, Infinity, 0.9]"),
    ("[0.1, -inf, 0.5, 0.9]", "box [0.1, -inf, 0.5, 0.9]"),
    ("[1e-1, 0.2, 0.5, 0.9]", "box [1e-1, 0.2, 0.5, 0.9]"),
    ("at {NaN, 0.5}", "span {NaN, 0.5}"),
])
def test_non_finite_coordinates_in_training_data_are_refused_at_their_line(tmp_path, answer, shown):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(_sample(0)) + "\n" + json.dumps(_sample(1, answer)) + "\n")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    message = str(err.value)
    assert message.startswith(f"{path}:2: field 'messages[1].content' holds {shown} (not plain finite decimals)")
    assert "no nan, inf or exponent" in message


def test_words_that_only_look_like_numbers_are_left_alone():
    assert invalid_coordinates("[0.1, 0.2, 0.5, 0.9] and [a, b, c, d] and [nan] and {inf}") == []
    assert invalid_coordinates("[[0.1, 0.2, 0.5, 0.9]]") == []


# ---- item 10 for the streamed readers (ijson: cost grows with the square of the depth) -----


def test_a_streamed_json_source_nested_too_deep_is_refused_as_read(tmp_path):
    from groundinggpt.data.jsonstream import MalformedJSON, iter_array

    path = tmp_path / "region_descriptions.json"
    path.write_bytes(b"[" + b"[" * 100_000)  # ijson: 30 000 levels took 13 s and 2.2 GB, 100 000 were killed
    t = time.process_time()
    with pytest.raises(MalformedJSON, match=r"region_descriptions\.json:\$\[0\]: invalid JSON after item -1 "
                                            r"\(arrays/objects nested more than 100 deep \(within bytes 1-"):
        list(iter_array(path))
    assert time.process_time() - t < 5


@pytest.mark.parametrize("chunk", [1, 3, 7, 64 * 1024])
def test_depth_guard_reads_strings_escapes_and_chunk_edges_right(tmp_path, chunk):
    import io

    tricky = [{"t": '[[[{{ "quoted" ]] \\', "u": "\\\\", "v": "\\\\\\\"]]]["}, [[["deep enough"]]]]
    text = json.dumps(tricky).encode()
    guard = jsonsafe.DepthGuard(io.BytesIO(text), max_depth=4)
    assert b"".join(iter(lambda: guard.read(chunk), b"")) == text  # depth 4: the brackets in strings do not count
    with pytest.raises(jsonsafe.NestingError, match="nested more than 3 deep"):
        guard = jsonsafe.DepthGuard(io.BytesIO(text), max_depth=3)
        while guard.read(chunk):
            pass
