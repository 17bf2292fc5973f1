"""Build the tiny preset's tokenizer: a small byte-level BPE with one token per digit.

Why these choices:
- byte-level: any text (including a user typing ``<image>`` or emoji) round-trips;
  nothing is ever ``<unk>``.
- one token per digit: boxes ``[0.123, ...]`` and spans ``{0.25, 0.50}`` are spelt
  digit by digit, which is what makes coordinates learnable for a small LLM
  (merged multi-digit tokens would have to be learnt one by one).
- the merges are learnt from a deterministic corpus of the words the synthetic
  world and the task templates use, so the tiny LLM sees short sequences.

Run from the repository root (seconds, deterministic):

    python scripts/build_tiny_tokenizer.py

It writes ``src/groundinggpt/assets/tiny-tokenizer/`` (committed).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

OUT = Path(__file__).resolve().parents[1] / "src" / "groundinggpt" / "assets" / "tiny-tokenizer"
VOCAB_SIZE = 1024
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>", "<audio>"]

COLOURS = "red green blue yellow purple orange white black gray pink cyan brown".split()
SHAPES = "circle square triangle star cross ring diamond heart rectangle object objects shape shapes".split()
SIZES = "small large big tiny medium huge little".split()
RELATIONS = [
    "left of", "right of", "above", "below", "next to", "near", "between", "behind",
    "in front of", "on top of", "at the top", "at the bottom", "in the middle", "in the corner",
]
EVENTS = "appears disappears moves jumps changes turns grows shrinks stops starts rolls bounces falls rises".split()
SOUNDS = "sound sounds beep whistle drum bell hum buzz chirp click tone noise music voice".split()
WORDS = """the a an this that these those is are was were be been it its of in on at to from with
and or but not no yes what which who where when how why there here image video audio clip picture
scene frame frames second seconds time during while after before then first last one two three four
five describe detail details caption output coordinate coordinates box region bounding location position
find locate ground give provide tell me please can you could does do did happen happens happened
source sounding making make makes made hear heard see seen look looks looking color colour size kind
object objects event events moment start end segment answer question user assistant human chat
curious artificial intelligence gives helpful detailed polite answers questions between""".split()
TEMPLATES = [
    "Output the coordinate of {x}.",
    "Please provide the bounding box coordinate of the region this sentence describes: {x}.",
    "When does {x} happen in the video?",
    "At which time interval in the video can we see {x} occurring?",
    "What is the source of the sound in this image?",
    "Describe the region {b} in detail.",
    "The {x} {b} is in the picture.",
    "It happens in {s}.",
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: {x} ASSISTANT: {x}",
]


def corpus() -> list[str]:
    """Deterministic training text for the BPE merges."""
    lines: list[str] = []
    for size, colour, shape in itertools.product(SIZES, COLOURS, SHAPES):
        lines.append(f"the {size} {colour} {shape}")
    for rel, colour, shape in itertools.product(RELATIONS, COLOURS, SHAPES):
        lines.append(f"{rel} the {colour} {shape}")
    for event, colour, shape in itertools.product(EVENTS, COLOURS, SHAPES[:8]):
        lines.append(f"the {colour} {shape} {event}")
    lines += [" ".join(WORDS[i : i + 8]) for i in range(0, len(WORDS), 3)]
    lines += [" ".join(SOUNDS)] * 4
    for template in TEMPLATES:
        for x in ("the red circle", "a blue square", "the dog jumps"):
            lines.append(template.format(x=x, b="[0.125, 0.250, 0.500, 0.875]", s="{0.10, 0.45}"))
    lines += [f"[{i / 1000:.3f}, {j / 100:.3f}]" for i, j in zip(range(0, 1000, 7), range(100))]
    return lines


def build() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    # Digits first (each digit its own pre-token), then GPT-2 style byte-level splitting.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<image>", "<video>", "<audio>"],
        model_max_length=2048,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    return fast


def main() -> None:
    fast = build()
    OUT.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(OUT)
    ids = fast("[0.125, 0.5]", add_special_tokens=False)["input_ids"]
    print(f"wrote {OUT} (vocab {len(fast)}); '[0.125, 0.5]' -> {fast.convert_ids_to_tokens(ids)}")


if __name__ == "__main__":
    main()
