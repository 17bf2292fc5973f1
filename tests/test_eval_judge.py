"""Video QA judged by an OpenAI-compatible endpoint: a tiny fake server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from groundinggpt.errors import InputError
from groundinggpt.eval.judge import Judge, JudgeError, judge_messages, parse_verdict

from test_eval_benchmarks import build_activitynet_qa, write_predictions
from test_eval_runner import MODEL_FLAGS, outputs, run_eval, tiny_dir  # noqa: F401 (fixture)


class _Handler(BaseHTTPRequestHandler):
    """Judges "yes, 4" when the reference answer appears in the prediction, else "no, 1"."""

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        server.calls.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if server.fail_next > 0:
            server.fail_next -= 1
            self.send_response(500)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        answer = re.search(r"Correct Answer: (.*)\n", user).group(1)
        pred = re.search(r"Predicted Answer: (.*)\n", user).group(1)
        verdict = "{'pred': 'yes', 'score': 4}" if answer.lower() in pred.lower() else "{'pred': 'no', 'score': 1}"
        reply = {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.calls, server.fail_next = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_parse_verdict_forms():
    assert parse_verdict("{'pred': 'yes', 'score': 4.8}") == {"pred": "yes", "score": 4}
    assert parse_verdict('{"pred": "no", "score": 0}') == {"pred": "no", "score": 0}
    assert parse_verdict("Sure! {'pred': 'Yes.', 'score': 9}") == {"pred": "yes", "score": 5}
    with pytest.raises(JudgeError):
        parse_verdict("I think it is right.")


def test_judge_prompt_carries_question_answer_prediction():
    user = judge_messages("what animal?", "dog", "a dog")[1]["content"]
    assert "Question: what animal?\nCorrect Answer: dog\nPredicted Answer: a dog\n" in user
    assert "'pred'" in user and "'score'" in user


@pytest.mark.parametrize("client", ["openai", "httpx", "urllib"])
def test_judge_clients_against_fake_server(judge_server, client):
    if client != "urllib":
        pytest.importorskip(client)
    server, url = judge_server
    judge = Judge(url, "judge-1", api_key="test-key", client=client, retries=2)
    server.fail_next = 1  # the first attempt gets HTTP 500 and is retried
    assert judge("what animal?", "dog", "It is a dog.")["pred"] == "yes"
    assert judge("what colour?", "red", "blue") == {"pred": "no", "score": 1, "reply": "{'pred': 'no', 'score': 1}"}
    assert [c["path"] for c in server.calls] == ["/v1/chat/completions"] * 3
    assert server.calls[-1]["auth"] == "Bearer test-key" and server.calls[-1]["body"]["model"] == "judge-1"


def test_judge_needs_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="OPENAI_API_KEY"):
        Judge("http://127.0.0.1:9/v1", "m")


def test_video_qa_predictions_judged_end_to_end(tmp_path, judge_server, monkeypatch):
    server, url = judge_server
    flags = build_activitynet_qa(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"v_abc_0": "It is a dog.", "v_xyz_0": "blue"})
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")  # the key comes from the environment here
    out = tmp_path / "out"
    argv = ["eval", "video-qa", "--predictions", str(preds), "--output", str(out), "--judge-endpoint", url,
            "--judge-model", "judge-1", *flags]
    assert run_eval(argv) == 0
    summary, records = outputs(out)
    assert summary["metrics"] == {"accuracy": 50.0, "score": 2.5}
    assert [r["judge"]["pred"] for r in records] == ["yes", "no"]
    assert server.calls[0]["auth"] == "Bearer env-key"
    # Rescoring the same answers reuses the verdicts: no new judge calls.
    assert run_eval(argv) == 0 and len(server.calls) == 2


def test_video_qa_judge_failure_is_a_listed_miss(tmp_path, judge_server):
    server, url = judge_server
    flags = build_activitynet_qa(tmp_path / "data")
    preds = write_predictions(tmp_path / "p.jsonl", {"v_abc_0": "dog", "v_xyz_0": "red"})
    server.fail_next = 3  # every attempt of the first question fails (3 retries)
    out = tmp_path / "out"
    run_eval(["eval", "video-qa", "--predictions", str(preds), "--output", str(out), "--judge-endpoint", url,
              "--judge-api-key", "k", *flags])
    summary, _ = outputs(out)
    assert summary["metrics"]["accuracy"] == 50.0
    assert summary["miss_list"][0]["status"] == "error" and "failed 3 times" in summary["miss_list"][0]["error"]


def test_video_qa_model_mode_then_judge_its_predictions(tmp_path, judge_server, tiny_dir):  # noqa: F811
    server, url = judge_server
    flags = build_activitynet_qa(tmp_path / "data")
    out = tmp_path / "gen"
    # Generation needs no judge (e.g. on a GPU machine without network) ...
    assert run_eval(["eval", "video-qa", "--model", tiny_dir, "--output", str(out), *flags, *MODEL_FLAGS]) == 0
    summary, records = outputs(out)
    assert summary["answered"] == 2 and summary["status_counts"] == {"not_judged": 2}
    assert summary["metrics"] == {} and "not judged" in (out / "summary.md").read_text()
    # ... and its predictions.jsonl is judged later.
    judged = tmp_path / "judged"
    assert run_eval(["eval", "video-qa", "--predictions", str(out / "predictions.jsonl"), "--output", str(judged),
                     "--judge-endpoint", url, "--judge-api-key", "k", *flags]) == 0
    assert outputs(judged)[0]["n"] == 2 and len(server.calls) == 2
