"""GPT-judged open-ended video QA (the Video-ChatGPT protocol).

Video-ChatGPT's quantitative evaluation (mbzuai-oryx/Video-ChatGPT,
``quantitative_evaluation/evaluate_activitynet_qa.py``), used for MSVD-QA, MSRVTT-QA
and ActivityNet-QA by Video-ChatGPT, Video-LLaVA and GroundingGPT's comparisons,
asks a chat model whether a predicted answer meaningfully matches the reference and
for an integer 0-5 score, replying with a dictionary ``{'pred': 'yes'|'no',
'score': N}``. Accuracy is the share of "yes" verdicts and the score is the mean of
``int(score)``.

Any OpenAI-compatible chat-completions endpoint can judge: the ``openai`` client is
used when installed, else a plain ``httpx`` POST to ``<endpoint>/chat/completions``
(else the standard library's ``urllib``, so judging never needs an extra install).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import time
import urllib.request
from typing import Any

from groundinggpt.errors import InputError

__all__ = ["Judge", "JudgeError", "judge_messages", "parse_verdict"]

_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative "
    "outputs for question-answer pairs. Your task is to compare the predicted answer with "
    "the correct answer and determine if they match meaningfully. Here's how you can "
    "accomplish the task:------##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)
_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\nCorrect Answer: {answer}\nPredicted Answer: {pred}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value "
    "between 0 and 5, with 5 indicating the highest meaningful match. Please generate the "
    "response in the form of a Python dictionary string with keys 'pred' and 'score', where "
    "value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not "
    "STRING.DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python "
    "dictionary string. For example, your response should look like this: "
    "{{'pred': 'yes', 'score': 4.8}}."
)
_DICT_RE = re.compile(r"\{.*?\}", re.DOTALL)


class JudgeError(RuntimeError):
    """The judge could not be reached or gave no usable verdict."""


def judge_messages(question: str, answer: str, pred: str) -> list[dict[str, str]]:
    """The judge's chat messages for one question (the Video-ChatGPT prompt)."""
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _USER.format(question=question, answer=answer, pred=pred)},
    ]


def parse_verdict(text: str) -> dict[str, Any]:
    """Judge reply → ``{"pred": "yes"|"no", "score": int 0-5}``.

    The reply should be a Python dict literal; JSON and a dict inside extra text are
    accepted too. ``pred`` is "yes" when it contains "yes" (as the protocol counts it).

    Raises:
        JudgeError: No dict with ``pred`` and ``score`` in the reply.
    """
    for candidate in [text.strip(), *_DICT_RE.findall(text)]:
        for loader in (json.loads, ast.literal_eval):
            try:
                value = loader(candidate)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict) and "pred" in value and "score" in value:
                try:
                    score = int(float(value["score"]))
                except (TypeError, ValueError):
                    continue
                pred = "yes" if "yes" in str(value["pred"]).lower() else "no"
                return {"pred": pred, "score": max(0, min(5, score))}
    raise JudgeError(f"judge reply holds no {{'pred': ..., 'score': ...}} dict: {text[:200]!r}")


class Judge:
    """An OpenAI-compatible chat endpoint that grades answers.

    Args:
        endpoint: Base URL of the API, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8000/v1``.
        model: The judge model name (``gpt-3.5-turbo`` in Video-ChatGPT).
        api_key: The key; defaults to ``$OPENAI_API_KEY``.
        timeout: Seconds per request.
        retries: Attempts per question (network errors and unusable replies).
        client: ``"auto"`` (openai, else httpx, else urllib: the first installed),
            ``"openai"``, ``"httpx"`` or ``"urllib"``.
    """

    def __init__(self, endpoint: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, client: str = "auto"):
        self.endpoint = endpoint.rstrip("/")
        self.model = model
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not self.api_key:
            raise InputError(
                "the video QA judge needs an API key: pass --judge-api-key or set OPENAI_API_KEY "
                "(for a local server that ignores keys, any value, e.g. --judge-api-key EMPTY)"
            )
        self.timeout = timeout
        self.retries = max(1, retries)
        if client == "auto":
            client = next((m for m in ("openai", "httpx") if importlib.util.find_spec(m)), "urllib")
        if client not in ("openai", "httpx", "urllib"):
            raise InputError(f"unknown judge client {client!r}; expected auto, openai, httpx or urllib")
        self.client_kind = client
        self._client: Any = None

    def _complete(self, messages: list[dict[str, str]]) -> str:
        if self.client_kind == "openai":
            if self._client is None:
                from openai import OpenAI

                # Retries are ours (they also cover unusable replies).
                self._client = OpenAI(base_url=self.endpoint, api_key=self.api_key,
                                      timeout=self.timeout, max_retries=0)
            reply = self._client.chat.completions.create(model=self.model, messages=messages, temperature=0)
            return reply.choices[0].message.content or ""
        url = f"{self.endpoint}/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        body = {"model": self.model, "messages": messages, "temperature": 0}
        if self.client_kind == "httpx":
            import httpx

            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            r = self._client.post(url, headers=headers, json=body)
            r.raise_for_status()
            data = r.json()
        else:
            request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # HTTP errors raise
                data = json.loads(response.read())
        return data["choices"][0]["message"]["content"] or ""

    def __call__(self, question: str, answer: str, pred: str) -> dict[str, Any]:
        """Grade one answer → ``{"pred", "score", "reply"}``.

        Raises:
            JudgeError: Every attempt failed (the last error is in the message).
        """
        messages = judge_messages(question, answer, pred)
        last: Exception | None = None
        for attempt in range(self.retries):
            try:
                reply = self._complete(messages)
                return {**parse_verdict(reply), "reply": reply}
            except Exception as e:  # network, HTTP status, or an unusable reply: try again
                last = e
                if attempt + 1 < self.retries:
                    time.sleep(min(2.0**attempt, 10.0) * 0.5)
        raise JudgeError(f"judge at {self.endpoint} failed {self.retries} times: {type(last).__name__}: {last}")
