"""Conversation templates: how a chat becomes one string for the LLM.

Two templates exist:

- ``vicuna_v1`` (our models): ``SYSTEM USER: ... ASSISTANT: answer</s>USER: ...``
  — the Vicuna-v1.1 format LLaVA-1.5 uses; each answer ends with the EOS token.
- ``legacy`` (the authors' released weights): ``SYSTEM###Human: ...###Assistant: answer###``;
  the model stops on ``###``.

A template only says *which strings go where*; tokenisation and label masking
live in the processor, which trains exactly the ``answer`` and its terminator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChatTemplate:
    """The pieces of a conversation string.

    Attributes:
        name: registry key.
        system: the default system prompt.
        after_system: text between the system prompt and the first user turn.
        user_prefix / user_suffix: around each user turn's content.
        assistant_prefix: opens an assistant turn (the generation prompt ends here).
        answer_prefix: between ``assistant_prefix`` and the answer text (trained).
        answer_suffix: after the answer (trained); ``None`` means the tokenizer's EOS token.
        stop_strings: strings that end generation besides EOS.
    """

    name: str
    system: str
    after_system: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    answer_prefix: str
    answer_suffix: str | None
    stop_strings: tuple[str, ...] = ()


VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
LEGACY_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

TEMPLATES: dict[str, ChatTemplate] = {
    "vicuna_v1": ChatTemplate(
        name="vicuna_v1", system=VICUNA_SYSTEM, after_system=" ",
        user_prefix="USER: ", user_suffix=" ", assistant_prefix="ASSISTANT:",
        answer_prefix=" ", answer_suffix=None, stop_strings=("</s>", "USER:"),
    ),
    "legacy": ChatTemplate(
        name="legacy", system=LEGACY_SYSTEM, after_system="###",
        user_prefix="Human: ", user_suffix="###", assistant_prefix="Assistant:",
        answer_prefix=" ", answer_suffix="###", stop_strings=("###",),
    ),
}


def get_template(name: str) -> ChatTemplate:
    """Look a template up by name, with an error that lists the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; known: {sorted(TEMPLATES)}") from None
