"""``groundinggpt data instruct KIND ROOT --endpoint URL --output FILE``: GPT-generated samples.

For each item (:mod:`.items`) the request is the kind's system message, its in-context
example (a user/assistant exchange) and the item's context, as in the paper's
Figures 4-6; the prompt files are ``prompts/<kind>/{system,example_user,example_assistant}.txt``
(``--prompts DIR`` overrides them: edit a copy). Requests run ``concurrency`` at a time
through :class:`.client.ChatClient` (retries with backoff on 429/5xx), at most
``budget`` HTTP requests per run. Every answer is parsed and filtered (:mod:`.parse`);
accepted samples go to ``OUTPUT`` at once, every finished item to ``OUTPUT.log.jsonl``
(accepted or rejected, with the reason) and every HTTP attempt to
``OUTPUT.usage.jsonl`` (status, tokens, cost). A run that is killed and started again
skips the items already in the log or in ``OUTPUT``: a finished item is never paid for
twice; items whose requests failed (endpoint down, budget spent) are tried again.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..schema import DataError, Sample

from ..sources.base import Context
from .client import BudgetExhausted, ChatClient, ChatError
from .items import KINDS, Item, items_for
from .parse import Rejection, parse_answer

__all__ = ["InstructReport", "run_instruct", "load_prompts", "PROMPTS_DIR"]

PROMPTS_DIR = Path(__file__).parent / "prompts"
_QUESTIONS = {
    "flickr30k-description": "Describe the image in detail, giving the coordinates of the objects you mention.",
}
_NORM = re.compile(r"[^a-z0-9]+")


@dataclass
class InstructReport:
    kind: str
    output: str
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    resumed: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    budget_exhausted: bool = False
    errors: dict[str, int] = field(default_factory=dict)   # why requests failed for good (first 120 chars)

    def summary(self) -> str:
        rej = sum(self.rejected.values())
        return (f"{self.kind}: {self.accepted} accepted -> {self.output}; {rej} rejected {dict(sorted(self.rejected.items()))}; "
                f"{self.failed} failed (tried again next run); {self.resumed} done before; {self.requests} requests, "
                f"{self.prompt_tokens}+{self.completion_tokens} tokens, cost {self.cost:.4f}"
                + ("; request budget spent" if self.budget_exhausted else ""))


def load_prompts(kind: str, folder: str | os.PathLike | None = None) -> dict[str, str]:
    """The kind's three prompt files, from ``folder/<kind>/`` when given, else the shipped ones."""
    out = {}
    for name in ("system", "example_user", "example_assistant"):
        for base in ([Path(folder)] if folder else []) + [PROMPTS_DIR]:
            p = base / kind / f"{name}.txt"
            if p.is_file():
                out[name] = p.read_text(encoding="utf-8").strip()
                break
        else:
            raise FileNotFoundError(f"prompt file {kind}/{name}.txt not found in {folder or PROMPTS_DIR}")
    return out


def _finished(output: Path) -> set[str]:
    done: set[str] = set()
    log = output.with_name(output.name + ".log.jsonl")
    for path, key in ((log, "item"), (output, "meta")):
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                d = json.loads(line)
                done.add(str(d[key]["item"] if key == "meta" else d[key]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill
    return done


def run_instruct(kind: str, root: str | os.PathLike, output: str | os.PathLike, *, endpoint: str,
                 model: str = "gpt-3.5-turbo", prompts: str | None = None, concurrency: int = 4,
                 budget: int | None = None, api_key_env: str = "OPENAI_API_KEY", options: dict | None = None,
                 limit: int | None = None, max_retries: int = 5, timeout: float = 120.0, progress: bool = False,
                 price_in: float = 0.0, price_out: float = 0.0, backoff: float = 1.0, sleep=time.sleep,
                 max_tokens: int = 1024, media_root: str | None = None, check_media: bool = True) -> InstructReport:
    """Generate one kind of instruction data (see the module doc); returns the counts."""
    if kind not in KINDS:
        raise KeyError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    source, _, task = KINDS[kind]
    prompt = load_prompts(kind, prompts)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    root = Path(root)
    report = InstructReport(kind=kind, output=str(output))
    done = _finished(output)
    report.resumed = len(done)
    lock = threading.Lock()
    state = {"requests": 0, "stop": False}
    seen_answers: set[str] = set()
    if output.is_file():
        for line in output.read_text(encoding="utf-8").splitlines():
            try:
                seen_answers.add(_NORM.sub(" ", json.loads(line)["messages"][1]["content"].lower()).strip())
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                pass
    ctx = Context(source=source, root=root, media_root=Path(media_root) if media_root else root,
                  options=dict(options or {}), stage=3, check_media=check_media)
    out_f = output.open("a", encoding="utf-8")
    log_f = output.with_name(output.name + ".log.jsonl").open("a", encoding="utf-8")
    usage_f = output.with_name(output.name + ".usage.jsonl").open("a", encoding="utf-8")
    current = threading.local()

    def before() -> None:
        with lock:
            if budget is not None and state["requests"] >= budget:
                state["stop"] = True
                raise BudgetExhausted()
            state["requests"] += 1

    def after(status, usage, seconds) -> None:
        pt, ct = int(usage.get("prompt_tokens", 0) or 0), int(usage.get("completion_tokens", 0) or 0)
        cost = pt / 1000 * price_in + ct / 1000 * price_out
        with lock:
            report.requests += 1
            report.prompt_tokens += pt
            report.completion_tokens += ct
            report.cost += cost
            usage_f.write(json.dumps({"item": getattr(current, "item", None), "status": status, "prompt_tokens": pt,
                                      "completion_tokens": ct, "seconds": round(seconds, 3), "cost": cost}) + "\n")
            usage_f.flush()

    client = ChatClient(endpoint, model, api_key_env=api_key_env, timeout=timeout, max_retries=max_retries,
                        backoff=backoff, before_attempt=before, on_attempt=after, sleep=sleep)
    style = "description" if kind == "flickr30k-description" else "qa"
    base_messages = [{"role": "system", "content": prompt["system"]},
                     {"role": "user", "content": prompt["example_user"]},
                     {"role": "assistant", "content": prompt["example_assistant"]}]

    def finish(item: Item, status: str, reason: str | None = None, detail: str = "") -> None:
        log_f.write(json.dumps({"item": item.id, "status": status, "reason": reason, "detail": detail[:300]}) + "\n")
        log_f.flush()

    def one(item: Item) -> None:
        current.item = item.id
        try:
            result = client.chat(base_messages + [{"role": "user", "content": item.context}],
                                 max_tokens=max_tokens, temperature=0.7)
        except BudgetExhausted:
            return
        except ChatError as e:
            with lock:
                report.failed += 1
                msg = str(e)[:120]
                report.errors[msg] = report.errors.get(msg, 0) + 1
            return
        with lock:
            try:
                parsed = parse_answer(result.text, style=style, boxes=item.boxes, spans=item.spans,
                                      max_words=120 if style == "description" else 60)
                key = _NORM.sub(" ", " ".join(a for _, a in parsed.turns).lower()).strip()
                if key in seen_answers:
                    raise Rejection("duplicate", "the same answer was accepted before")
                turns = parsed.turns
                if style == "description":
                    turns = [(_QUESTIONS[kind], turns[0][1])]
                sample = ctx.sample(f"{kind}-{item.id}", task, item.media, turns, {"item": item.id, "kind": kind,
                                                                                    "model": model})
                sample.pop("_built", None)
                Sample.from_dict(sample, f"{kind} item {item.id}")
            except Rejection as r:
                report.rejected[r.reason] = report.rejected.get(r.reason, 0) + 1
                finish(item, "rejected", r.reason, r.detail)
                return
            except DataError as e:
                report.rejected["invalid_sample"] = report.rejected.get("invalid_sample", 0) + 1
                finish(item, "rejected", "invalid_sample", str(e))
                return
            seen_answers.add(key)
            out_f.write(json.dumps(sample, ensure_ascii=False) + "\n")
            out_f.flush()
            finish(item, "accepted")
            report.accepted += 1

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc=kind, unit=" items", file=sys.stderr, disable=None)
    try:
        with ThreadPoolExecutor(max(1, concurrency)) as pool:
            pending = set()
            taken = 0
            for item in items_for(kind, ctx):
                if item.id in done:
                    continue
                if state["stop"] or (limit is not None and taken >= limit):
                    break
                taken += 1
                pending.add(pool.submit(one, item))
                if len(pending) >= 2 * max(1, concurrency):
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        f.result()
                        if bar is not None:
                            bar.update()
            for f in pending:
                f.result()
                if bar is not None:
                    bar.update()
    finally:
        out_f.close()
        log_f.close()
        usage_f.close()
        if bar is not None:
            bar.close()
    report.budget_exhausted = state["stop"]
    for reason, n in ctx.counts.items():
        report.rejected[f"source:{reason}"] = n
    return report



