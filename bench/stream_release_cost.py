#!/usr/bin/env python
"""CPU cost of releasing a streamed answer: ``AnswerStream`` vs re-decoding it per token.

The baseline is what ``AnswerStream.push`` did before it decoded incrementally: for every
new token, decode the whole answer so far, cut it at the stop strings, find its settled
prefix and convert all of its boxes — so an answer of n tokens cost O(n²). Both run in
this process on the same token ids (a grounded answer: sentences with boxes, in a wide
image's frame), with the tiny preset's byte-level tokenizer; no model runs, so the
figures are the streaming overhead alone, added to every generated token. The two must
release exactly the same text; the script checks it.

    python bench/stream_release_cost.py [--tokens 250 1000 4000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time


def _baseline_release(processor, media_info, ids: list[int]) -> str:
    """The released text as the previous implementation computed it, token by token."""
    from groundinggpt.streaming import answer_text, settled_prefix

    hold = tuple(processor.template.stop_strings)
    sent = ""
    for n in range(1, len(ids) + 1):
        settled = settled_prefix(answer_text(processor, ids[:n]), hold)
        text = processor.post_process(settled, media_info).text
        if text.startswith(sent):
            sent = text
    return sent


def _stream_release(processor, media_info, ids: list[int]) -> str:
    from groundinggpt.streaming import AnswerStream

    stream = AnswerStream(processor, media_info)
    for i in ids:
        stream.push(i)
    return stream.sent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, nargs="+", default=[250, 1000, 4000], help="answer lengths")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (median)")
    args = p.parse_args()

    from groundinggpt.presets import tiny_processor
    from groundinggpt.processor import MediaInfo

    processor = tiny_processor()
    media_info = [MediaInfo(kind="image", original_size=(640, 360))]
    sentence = "The small red circle[0.12, 0.30, 0.25, 0.44] is left of the large blue square[0.5, 0.5, 0.9, 0.9]. "
    sentence_ids = processor.tokenizer(sentence, add_special_tokens=False)["input_ids"]

    rows = []
    for n in args.tokens:
        ids = (sentence_ids * (n // len(sentence_ids) + 1))[:n]
        timings = {"baseline": [], "stream": []}
        released = {}
        for _ in range(args.repeats):  # interleaved, so load from other jobs falls on both
            for name, fn in (("baseline", _baseline_release), ("stream", _stream_release)):
                start = time.perf_counter()
                released[name] = fn(processor, media_info, ids)
                timings[name].append(time.perf_counter() - start)
        if released["baseline"] != released["stream"]:
            raise SystemExit(f"{n} tokens: the two released different text")
        base, now = (statistics.median(timings[k]) for k in ("baseline", "stream"))
        rows.append((n, base, now))

    print("| answer length | re-decode per token (before), s | AnswerStream (now), s | per token now, µs | faster |")
    print("|---:|---:|---:|---:|---:|")
    for n, base, now in rows:
        print(f"| {n} | {base:.3f} | {now:.3f} | {now / n * 1e6:.0f} | {base / now:.1f}x |")


if __name__ == "__main__":
    main()
