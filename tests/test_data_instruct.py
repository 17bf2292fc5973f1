"""GPT-generated instruction data and question pools against a scripted local endpoint
(deterministic good / bad / rate-limited / failing answers) and once against
``groundinggpt serve``'s app with the tiny preset."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from groundinggpt.data.instruct.parse import Rejection, parse_answer
from groundinggpt.data.instruct.question_pool import filter_phrasings, generate_question_pool
from groundinggpt.data.instruct.run import load_prompts, run_instruct
from groundinggpt.data.templates import QUESTION_POOLS

BOX1 = "[0.100, 0.200, 0.500, 0.600]"   # pixels 51..250 x 81..240 of 500x400 (1-based, inclusive)


def flickr(root: Path, n: int = 4) -> Path:
    (root / "Sentences").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i in range(1, n + 1):
        (root / "Sentences" / f"{i}.txt").write_text(f"[/EN#1/animals A dog{i}] runs .\n")
        (root / "Annotations" / f"{i}.xml").write_text(
            "<annotation><size><width>500</width><height>400</height></size><object><name>1</name><bndbox>"
            "<xmin>51</xmin><ymin>81</ymin><xmax>250</xmax><ymax>240</ymax></bndbox></object></annotation>")
    return root


class Scripted:
    """A fake OpenAI-compatible server: the answer depends on the item named in the prompt."""

    def __init__(self, script):
        self.script = script
        self.calls: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                last = body["messages"][-1]["content"]
                key = next((k for k in outer.script if k in last), "default")
                n = outer.calls[key] = outer.calls.get(key, 0) + 1
                status, text = outer.script[key](n)
                payload = ({"choices": [{"message": {"role": "assistant", "content": text}}],
                            "usage": {"prompt_tokens": 100, "completion_tokens": 20}} if status == 200
                           else {"error": {"message": "scripted"}})
                data = json.dumps(payload).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()


SCRIPT = {
    "dog1": lambda n: (200, f"In the image, a dog{BOX1} runs across the grass."),
    "dog2": lambda n: (200, "A dog[0.700, 0.100, 0.900, 0.300] runs."),          # a box that was not given
    "dog3": lambda n: (429, "") if n == 1 else (200, f"A brown dog{BOX1} is running."),
    "dog4": lambda n: (500, ""),
}


def test_prompt_files_are_the_papers_figures():
    p = load_prompts("flickr30k-description")
    assert p["system"].startswith("You are an AI visual assistant that can analyze a single image.")
    assert "limited to 100 words" in p["system"]
    assert "two young men[0.474, 0.248, 0.655, 0.668]" in p["example_assistant"]
    assert "{0.21,0.74}" in load_prompts("video-conversation")["example_assistant"]


def test_instruct_run_filters_retries_logs_and_resumes(tmp_path):
    root = flickr(tmp_path / "f")
    out = tmp_path / "gen" / "desc.jsonl"
    slept = []
    with Scripted(SCRIPT) as srv:
        rep = run_instruct("flickr30k-description", root, out, endpoint=srv.url, concurrency=2, max_retries=2,
                           check_media=False, sleep=slept.append, price_in=1.0, price_out=2.0)
        assert rep.accepted == 2 and rep.rejected == {"invented_box": 1} and rep.failed == 1
        assert srv.calls == {"dog1": 1, "dog2": 1, "dog3": 2, "dog4": 3}     # 429 retried once, 500 three times
        assert rep.requests == 7 and rep.prompt_tokens == 300 and rep.completion_tokens == 60  # 3 answers
        assert rep.cost == pytest.approx(3 * (0.1 + 0.04))
        assert slept and all(s <= 60 for s in slept)
        samples = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
        s1 = samples["flickr30k-description-1"]
        assert s1["messages"][1]["content"] == f"In the image, a dog{BOX1} runs across the grass."
        assert s1["messages"][0]["content"][0] == {"type": "image", "image": "flickr30k-images/1.jpg"}
        usage = out.with_name(out.name + ".usage.jsonl").read_text().splitlines()
        assert len(usage) == 7 and sum(json.loads(u)["status"] == 500 for u in usage) == 3
        log = [json.loads(x) for x in out.with_name(out.name + ".log.jsonl").read_text().splitlines()]
        assert {d["item"]: d["reason"] for d in log} == {"1": None, "2": "invented_box", "3": None}
        # run again: finished items are not requested again; the failed one is
        rep2 = run_instruct("flickr30k-description", root, out, endpoint=srv.url, max_retries=0,
                            check_media=False, sleep=slept.append)
        assert srv.calls == {"dog1": 1, "dog2": 1, "dog3": 2, "dog4": 4}
        assert rep2.resumed == 3 and rep2.accepted == 0 and rep2.failed == 1


def test_request_budget_stops_the_run(tmp_path):
    root = flickr(tmp_path / "f")
    with Scripted({"default": lambda n: (200, f"A dog{BOX1} runs.")}) as srv:
        rep = run_instruct("flickr30k-description", root, tmp_path / "o.jsonl", endpoint=srv.url, concurrency=1,
                           budget=2, check_media=False)
    assert rep.requests == 2 and rep.budget_exhausted
    assert rep.accepted == 1 and rep.rejected == {"duplicate": 1}   # the same text twice is kept once


@pytest.mark.parametrize("text, style, reason", [
    ("", "description", "empty"),
    ("A dog runs.", "description", "no_coordinates"),
    ("A dog[0.5, 0.2, 0.1, 0.6] runs.", "description", "invalid_box"),
    ("no pairs here", "qa", "format"),
    ("{'question':'When?', 'answer':'In {0.50, 1.20}.'}", "qa", "span_outside_video"),
    ("{'question':'When?', 'answer':'In {0.10, 0.20}.'}", "qa", "invented_span"),
    ("{'question':'When?', 'answer':'" + "word " * 70 + "{0.21,0.74}'}", "qa", "too_long"),
])
def test_answer_filters_name_the_reason(text, style, reason):
    with pytest.raises(Rejection) as e:
        parse_answer(text, style=style, boxes=[(0.1, 0.2, 0.5, 0.6)], spans=[(0.21, 0.74)], max_words=60)
    assert e.value.reason == reason


def test_qa_parsing_and_coordinate_normalisation():
    p = parse_answer("{'question':'What happens during{0.21,0.74}?', 'answer':'She dances.'}\n"
                     "Question: When does she stop?\nAnswer: At the end {0.21, 0.74}.",
                     style="qa", spans=[(0.21, 0.74)])
    assert p.turns == [("What happens during{0.21, 0.74}?", "She dances.")]


def test_question_pool_generation_filters_and_dedups():
    new, dropped = filter_phrasings("rec", "1. Where is {exp}?\n- Where is {exp}?\n* Find {region} now please\n"
                                           '"Locate {exp} for me, please."\nIn this image, where is {exp} located?\nx\n{exp}?',
                                    QUESTION_POOLS["rec"])
    assert new == ["Where is {exp}?", "Locate {exp} for me, please."]
    assert dropped == {"duplicate": 2, "wrong slots": 2, "length": 1}
    with Scripted({"default": lambda n: (200, "Pinpoint {exp} in the picture.\nWhere is {event}?")}) as srv:
        pool = generate_question_pool("rec", endpoint=srv.url, rounds=2)
    assert pool[:len(QUESTION_POOLS["rec"])] == list(QUESTION_POOLS["rec"])
    assert pool[len(QUESTION_POOLS["rec"]):] == ["Pinpoint {exp} in the picture."]


def test_against_groundinggpt_serve_with_the_tiny_preset(tmp_path):
    pytest.importorskip("fastapi")
    from groundinggpt.serve.server import Limits, create_app
    from test_serve_support import UvicornThread, chatty_tiny

    root = tmp_path / "anet"
    root.mkdir()
    (root / "train.json").write_text(json.dumps({"v_a": {"duration": 10.0, "timestamps": [[0, 5], [5, 10]],
                                                          "sentences": ["A man walks.", "He sits."]}}))
    # the tiny model's context is 1024 tokens: an edited, shorter copy of the prompt files (--prompts)
    prompts = tmp_path / "prompts" / "video-conversation"
    prompts.mkdir(parents=True)
    (prompts / "system.txt").write_text("Write questions and answers about the video with time spans {t1, t2}.")
    (prompts / "example_user.txt").write_text("{'A woman dances.': '{0.01, 0.24}'}")
    (prompts / "example_assistant.txt").write_text("{'question':'When does she dance?', 'answer':'In {0.01,0.24}.'}")
    app = create_app(chatty_tiny(), Limits(max_tokens_limit=64, default_max_tokens=8), model_name="tiny-test")
    with UvicornThread(app) as srv:
        rep = run_instruct("video-conversation", root, tmp_path / "v.jsonl", endpoint=srv.url + "/v1",
                           prompts=str(tmp_path / "prompts"),
                           model="tiny-test", max_tokens=8, check_media=False, max_retries=0, timeout=600)
    # a random tiny model writes no question/answer pairs: one real request, one counted rejection
    assert rep.requests == 1 and rep.failed == 0, rep.errors
    assert rep.prompt_tokens > 0
    assert rep.accepted + sum(rep.rejected.values()) == 1


def test_vcr_reasoning_through_the_cli(tmp_path, capsys):
    import data_source_files as files
    from groundinggpt.cli import main

    root = files.vcr(tmp_path / "vcr")
    p1 = "[0.050, 0.050, 0.550, 0.550]"
    answer = (f"{{'question':'What is the man{p1} doing?', 'answer':'He drinks from the cup"
              "[0.000, 0.000, 0.250, 0.125].'}")
    with Scripted({"person1": lambda n: (200, answer)}) as srv:
        out = tmp_path / "vcr.jsonl"
        assert main(["data", "instruct", "vcr-reasoning", str(root), "--endpoint", srv.url, "--output", str(out),
                     "--no-check-media", "--quiet"]) == 0
        assert srv.calls == {"person1": 1}     # the test split's record and the bad line make no request
    assert "1 accepted" in capsys.readouterr().out
    (s,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert s["messages"][0]["content"][0] == {"type": "image", "image": "vcr1images/movie1/frame1.jpg"}
    assert s["messages"][1]["content"] == "He drinks from the cup[0.000, 0.000, 0.250, 0.125]."
