"""The conversation encoder: :class:`GroundingGPTProcessor` (see :mod:`groundinggpt.processor`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

from ..chat_template import ChatTemplate, get_template
from ..errors import InputError, MediaError
from ..grounding import original_to_square, parse_grounding, replace_boxes, square_to_original
from ..modalities import MEDIA_KINDS, MODALITIES, PART_TYPES_IN_WORDS, get_modality
from .collate import IGNORE_INDEX, collate_rows
from .config import PROCESSOR_CONFIG_NAME, ProcessorConfig
from .outputs import GroundedOutput, MediaInfo

__all__ = ["GroundingGPTProcessor"]

# How typed text is encoded: split_special_tokens so that a user typing "<image>" or "</s>"
# gets plain text tokens, never a placeholder or an end of turn.
_TEXT_ENCODING = dict(add_special_tokens=False, split_special_tokens=True)


def _encodable(text: str) -> bool:
    """False for text the tokenizer cannot encode (a lone surrogate, e.g. JSON's "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _part_source(part: dict[str, Any], kind: str, where: str) -> Any:
    for key in (kind, "url", "path", f"{kind}_url"):
        value = part.get(key)
        if isinstance(value, dict) and "url" in value:  # OpenAI-style {"image_url": {"url": ...}}
            value = value["url"]
        if value is not None:
            return value
    raise InputError(
        f"{where}: a {kind!r} part has no file: expected a {kind!r} field holding a path, bytes, "
        f"{'PIL image, ' if kind == 'image' else ''}or data: URL"
    )



class GroundingGPTProcessor(ProcessorMixin):
    """Turns conversations into model inputs and model text into grounded results.

    A transformers ``ProcessorMixin``: ``AutoProcessor.from_pretrained(folder)`` gives it back
    after ``import groundinggpt`` (it is saved with the model: the tokenizer plus
    ``groundinggpt_processor.json``). Its own media settings stay one dataclass
    (:class:`ProcessorConfig`), so the mixin's generic sub-processor machinery is not used.

    Args:
        tokenizer: the LLM's tokenizer; must contain the three placeholder tokens.
        config: media settings; see :class:`ProcessorConfig`.
    """

    attributes = ["tokenizer"]

    def __init__(self, tokenizer: PreTrainedTokenizerBase, config: ProcessorConfig | None = None):
        # ProcessorMixin.__init__ is not called: it would check sub-processor classes we do not have.
        self.chat_template = None
        self.tokenizer = tokenizer
        self.config = config or ProcessorConfig()
        self.template: ChatTemplate = get_template(self.config.chat_template)
        self.token_ids = {}
        for kind in MEDIA_KINDS:
            token = getattr(self.config, get_modality(kind).token_field)
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(f"tokenizer has no {kind} placeholder token {token!r}; add it as a special token")
            self.token_ids[kind] = token_id
        self.seq_lengths = {m.name: getattr(self.config, m.seq_length_field) for m in MODALITIES}
        self.boundary_ids: dict[str, tuple[int, int]] = {}
        for kind, pair in (self.config.boundary_tokens or {}).items():
            found = [tokenizer.convert_tokens_to_ids(t) for t in pair]
            if any(i is None or i == tokenizer.unk_token_id for i in found):
                raise ValueError(f"tokenizer lacks the {kind} boundary tokens {pair}; add them as special tokens")
            self.boundary_ids[kind] = (found[0], found[1])
        # Measured once, here: a fast tokenizer shared by threads (the server's media pool, a
        # web page's requests) raises "Already borrowed" when one thread changes its
        # split_special_tokens setting while another encodes. The probe encodes with the
        # default setting; the encode after it leaves the setting every later encode asks for.
        self._lead_after_eos = self._measure_lead_after_eos()
        self.tokenizer("", **_TEXT_ENCODING)

    # ---- identity -------------------------------------------------------------------------
    @property
    def image_token_id(self) -> int:
        return self.token_ids["image"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokenizer={type(self.tokenizer).__name__}, config={self.config})"

    def to_dict(self) -> dict[str, Any]:
        return self.config.to_dict()

    def save_pretrained(self, directory: str | Path, **_: Any) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(directory)
        (directory / PROCESSOR_CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2))
        # What AutoProcessor reads to find this class when the folder holds no model config.
        (directory / "processor_config.json").write_text(json.dumps({"processor_class": type(self).__name__}))

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> GroundingGPTProcessor:
        """Load a saved processor; ``overrides`` replace :class:`ProcessorConfig` fields (other
        keyword arguments, such as those ``AutoProcessor`` passes on, are ignored)."""
        directory = Path(directory)
        path = directory / PROCESSOR_CONFIG_NAME
        if not path.is_file():
            from ..convert.lego import is_lego_folder, lego_folder_error

            if is_lego_folder(directory):
                raise lego_folder_error(directory, "processor folder")
            raise FileNotFoundError(f"{path} not found: not a GroundingGPT model/processor folder")
        values = json.loads(path.read_text())
        known = set(ProcessorConfig.__dataclass_fields__)
        values.update({k: v for k, v in overrides.items() if k in known})
        for key in ("image_mean", "image_std"):
            values[key] = tuple(values[key])
        return cls(AutoTokenizer.from_pretrained(directory), ProcessorConfig(**values))

    # ---- media ----------------------------------------------------------------------------
    def load_medium(self, kind: str, source: Any) -> tuple[torch.Tensor, MediaInfo]:
        """Decode and preprocess one medium → (tensor, info). Raises MediaError naming the source."""
        tensor, info = get_modality(kind).load(source, self.config)
        return tensor, MediaInfo(kind, **info)

    # ---- one conversation -----------------------------------------------------------------
    def _normalise(self, messages: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(messages, (list, tuple)) or not messages:
            raise InputError(f"{where}: expected a non-empty list of messages, got {type(messages).__name__}")
        out = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise InputError(f"{where}, message {i}: expected a dict with 'role' and 'content'")
            role, content = message["role"], message["content"]
            if role not in ("system", "user", "assistant"):
                raise InputError(f"{where}, message {i}: unknown role {role!r}; expected system, user or assistant")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if not isinstance(content, (list, tuple)):
                raise InputError(f"{where}, message {i}: content must be a string or a list of parts")
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind not in ("text", *MEDIA_KINDS):
                    raise InputError(
                        f"{where}, message {i}, part {j}: unknown content type {kind!r}; "
                        f"expected {PART_TYPES_IN_WORDS}"
                    )
                if kind == "text" and not isinstance(part.get("text"), str):
                    raise InputError(f"{where}, message {i}, part {j}: a text part needs a string 'text' field")
                if kind == "text" and not _encodable(part["text"]):
                    raise InputError(f"{where}, message {i}, part {j}: the text holds a lone UTF-16 surrogate "
                                     "(U+D800 to U+DFFF); expected valid Unicode text")
                if kind != "text" and role != "user":
                    raise InputError(f"{where}, message {i}, part {j}: only user messages may hold media")
            out.append({"role": role, "content": list(content)})
        return out

    def _load_media(self, messages: list[dict[str, Any]], first: int, where: str, load: Any,
                    ) -> dict[tuple[int, int], tuple[Any, MediaInfo]]:
        """Every medium of the conversation, in order: ``(message, part) -> (tensor, info)``."""
        loaded: dict[tuple[int, int], tuple[Any, MediaInfo]] = {}
        counts = {k: 0 for k in MEDIA_KINDS}
        for i, message in enumerate(messages[first:], start=first):
            if message["role"] != "user":
                continue
            for j, part in enumerate(message["content"]):
                kind = part["type"]
                if kind == "text":
                    continue
                counts[kind] += 1
                limit = self.config.max_media.get(kind, 0) if self.seq_lengths[kind] else 0
                if counts[kind] > limit:
                    raise InputError(
                        f"{where}: {counts[kind]} {kind} parts, but this model supports at most {limit} per conversation"
                    )
                source = _part_source(part, kind, f"{where}, message {i}, part {j}")
                try:
                    loaded[(i, j)] = load(kind, source)
                except MediaError as e:
                    located = copy.copy(e)  # keeps the class (MediaLimitError) and its code
                    located.args = (f"{where}, message {i}, part {j}: {e}",)
                    located.part, located.reason = (i, j), str(e)
                    raise located from e
        return loaded

    def _encode_conversation(self, messages: Any, where: str, add_generation_prompt: bool, media_loader=None):
        """→ (ids, labels, media tensors by kind, media infos)."""
        load = media_loader or self.load_medium
        messages = self._normalise(messages, where)
        t = self.template
        ids: list[int] = []
        labels: list[int] = []
        media: dict[str, list[torch.Tensor]] = {k: [] for k in MEDIA_KINDS}
        infos: list[MediaInfo] = []

        # Text is tokenised a run at a time, between placeholders and end-of-turn tokens, as
        # the whole prompt string is in LLaVA: tokenising each piece apart made SentencePiece
        # put a "▁" before every piece ("questions. ▁ ▁USER"), which Vicuna never saw.
        run: list[tuple[str, bool]] = []
        after_eos = [False]

        def text(s: str, train: bool = False) -> None:
            if s:
                run.append((s, train))

        def token(token_id: int, train: bool = False) -> None:
            self._tokenize_run(run, ids, labels, after_eos[0])
            ids.append(token_id)
            labels.append(token_id if train else IGNORE_INDEX)
            after_eos[0] = token_id == self.tokenizer.eos_token_id

        if self.tokenizer.bos_token_id is not None:
            token(self.tokenizer.bos_token_id)
        system = t.system if self.config.system_prompt is None else self.config.system_prompt
        first = 0  # index of the first non-system message: errors name messages as the caller numbered them
        if messages[0]["role"] == "system":
            system = "".join(p["text"] for p in messages[0]["content"] if p["type"] == "text")
            first = 1
        loaded = self._load_media(messages, first, where, load)
        # Boxes in text refer to the conversation's image (the latest one at or before the
        # message, else the first), also when the text comes before the image part, as
        # OpenAI clients often send it.
        images = [(i, info) for (i, _), (_, info) in loaded.items() if info.kind == "image"]

        def to_square(s: str, i: int) -> str:
            # Boxes a user or dataset writes are relative to the original image; the model's are not.
            frame = ([info for at, info in images if at <= i] or [info for _, info in images[:1]] or [None])[-1]
            if frame is None:
                return s
            w, h = frame.original_size
            return replace_boxes(s, lambda b: original_to_square(b, w, h), only_valid=True)

        text(system + t.after_system)
        for i, message in enumerate(messages[first:], start=first):
            if message["role"] == "system":
                raise InputError(f"{where}, message {i}: a system message may only come first")
            if message["role"] == "user":
                text(t.user_prefix)
                for j, part in enumerate(message["content"]):
                    kind = part["type"]
                    if kind == "text":
                        text(to_square(part["text"], i))
                        continue
                    tensor, info = loaded[(i, j)]
                    if tensor is not None:  # None: the caller supplies features (e.g. the feature cache)
                        media[kind].append(tensor)
                    infos.append(info)
                    bounds = self.boundary_ids.get(kind)
                    if bounds:
                        token(bounds[0])
                    for _ in range(self.seq_lengths[kind]):
                        token(self.token_ids[kind])
                    if bounds:
                        token(bounds[1])
                    text("\n")
                text(t.user_suffix)
            else:
                answer = "".join(p["text"] for p in message["content"])
                text(t.assistant_prefix)
                text(t.answer_prefix + to_square(answer, i), train=True)
                if t.answer_suffix is None:
                    token(self.tokenizer.eos_token_id, train=True)
                else:
                    text(t.answer_suffix, train=True)
        if add_generation_prompt:
            if messages[-1]["role"] == "assistant":
                raise InputError(f"{where}: add_generation_prompt=True but the last message is the assistant's")
            text(t.assistant_prefix)
        self._tokenize_run(run, ids, labels, after_eos[0])
        return ids, labels, media, infos

    def _measure_lead_after_eos(self) -> tuple[str, int]:
        """``(text, its token count)`` to tokenise a run behind (and drop) so that it comes out
        as it does after ``</s>`` inside one prompt string: ``("", 0)`` when that is how it
        comes out at a string's start (byte-level BPE, legacy SentencePiece), a newline when
        the tokenizer adds a start-of-string "▁" that it would not add after a special token."""
        tok, kw = self.tokenizer, dict(add_special_tokens=False)
        probe = (self.template.user_prefix or "USER: ") + "x"
        if not tok.eos_token:
            return "", 0
        after = tok(tok.eos_token + probe, **kw)["input_ids"][1:]
        if tok(probe, **kw)["input_ids"] == after:
            return "", 0
        skip = len(tok("\n", **kw)["input_ids"])
        return ("\n", skip) if tok("\n" + probe, **kw)["input_ids"][skip:] == after else ("", 0)

    def _tokenize_run(self, run: list[tuple[str, bool]], ids: list[int], labels: list[int],
                      after_eos: bool = False) -> None:
        """Tokenise a run of ``(text, trained)`` pieces as one string, append the ids and their
        labels (a token is trained where it covers trained text), and empty the run.

        After an end-of-turn token the run continues LLaVA's prompt string ("...</s>USER: "),
        where a (non-legacy) SentencePiece tokenizer adds no "▁" as it does at a string's
        start: the run is then tokenised behind a newline, whose tokens are dropped
        (:meth:`_measure_lead_after_eos` checks which way this tokenizer goes).
        """
        if not run:
            return
        kw = _TEXT_ENCODING
        if not self.tokenizer.is_fast:  # no character offsets: piece by piece, as before
            for piece, train in run:
                toks = self.tokenizer(piece, **kw)["input_ids"]
                ids.extend(toks)
                labels.extend(toks if train else [IGNORE_INDEX] * len(toks))
            run.clear()
            return
        trained, at = [], 0
        for piece, train in run:
            if train:
                trained.append((at, at + len(piece)))
            at += len(piece)
        lead, skip = self._lead_after_eos if after_eos else ("", 0)
        enc = self.tokenizer(lead + "".join(piece for piece, _ in run), return_offsets_mapping=True, **kw)
        run.clear()
        trained = [(s + len(lead), e + len(lead)) for s, e in trained]
        for tok, (a, b) in zip(enc["input_ids"][skip:], enc["offset_mapping"][skip:]):
            inside = any((b > s and a < e) if b > a else s <= a < e for s, e in trained)
            ids.append(tok)
            labels.append(tok if inside else IGNORE_INDEX)

    def __call__(
        self,
        conversations: Any,
        add_generation_prompt: bool | None = None,
        padding_side: str = "left",
        return_labels: bool = False,
        media_loader: Any = None,
    ) -> BatchFeature:
        """Encode one conversation (a list of messages) or a batch of them.

        Args:
            conversations: a list of messages, or a list of such lists.
            add_generation_prompt: end with the assistant prefix so the model answers next.
                Defaults to True when the last message is the user's.
            padding_side: ``"left"`` for generation, ``"right"`` for training.
            return_labels: also return ``labels`` (-100 everywhere but the answers).
            media_loader: replaces :meth:`load_medium`: ``(kind, source) -> (tensor | None, MediaInfo)``.
                Returning ``None`` as the tensor builds text, placeholders and coordinate
                conversion as usual but adds no media tensor (the training feature cache
                supplies the encoders' outputs instead).

        Returns:
            A ``BatchFeature`` with ``input_ids``, ``attention_mask`` (and ``labels``), the
            media tensors present (``pixel_values`` [I,3,S,S], ``pixel_values_videos``
            [V,M,3,S,S], ``input_features`` [A,N,1,F,T]) and ``media_info`` (a list per sample).
        """
        batch = conversations
        if isinstance(conversations, (list, tuple)) and conversations and isinstance(conversations[0], dict):
            batch = [conversations]
        if not isinstance(batch, (list, tuple)) or not batch:
            raise InputError("expected a conversation (list of messages) or a non-empty list of conversations")
        encoded = []
        for b, messages in enumerate(batch):
            gen = add_generation_prompt
            if gen is None:
                gen = isinstance(messages, (list, tuple)) and bool(messages) and isinstance(messages[-1], dict) \
                    and messages[-1].get("role") == "user"
            encoded.append(self._encode_conversation(messages, f"conversation {b}", gen, media_loader))
        return self._collate(encoded, padding_side, return_labels)

    def _collate(self, encoded, padding_side: str, return_labels: bool) -> BatchFeature:
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        for m in MODALITIES:
            shapes = {t.shape for _, _, media, _ in encoded for t in media[m.name]}
            if len(shapes) > 1:
                # "index" sampling keeps a short clip's own frame count, as the released inference does.
                raise InputError(f"{m.name} media of shapes {sorted(tuple(s) for s in shapes)} cannot share "
                                 "a batch (a clip shorter than num_frames keeps its own frames with frame_sampling "
                                 "'index'); send them in separate batches")
        rows = [{"input_ids": ids, "labels": labs,
                 **{m.raw_key: torch.stack(media[m.name]) for m in MODALITIES if media[m.name]}}
                for ids, labs, media, _ in encoded]
        data: dict[str, Any] = collate_rows(rows, pad_id, padding_side)
        if not return_labels:
            del data["labels"]
        feature = BatchFeature(data=data)
        feature["media_info"] = [infos for *_, infos in encoded]
        return feature

    # ---- decoding -------------------------------------------------------------------------
    def decode(self, token_ids: Any) -> str:
        """Generated ids → answer text, cut at the template's stop strings."""
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        for stop in self.template.stop_strings:
            cut = text.find(stop)
            if cut >= 0:
                text = text[:cut]
        return text.strip()

    @staticmethod
    def boxes_to_user_frame(text: str, media_info: list[MediaInfo] | None = None) -> str:
        """``text`` with every box moved from the padded square to the conversation's last
        image (unchanged without one). Each box is rewritten on its own, so the text may be
        converted piece by piece, as streaming does, provided no piece cuts a box."""
        image = next((m for m in reversed(media_info or []) if m.kind == "image"), None)
        if image is None or not image.original_size:
            return text
        w, h = image.original_size
        return replace_boxes(text, lambda b: square_to_original(b, w, h))

    def post_process(self, text: str, media_info: list[MediaInfo] | None = None) -> GroundedOutput:
        """Parse boxes and spans from model text and express them in the user's frame.

        Boxes are converted from the padded square to the original image (the last image
        of the conversation, which is what the model was looking at); spans get a
        duration from the conversation's video (or audio) so callers can read seconds.
        """
        media_info = media_info or []
        image = next((m for m in reversed(media_info) if m.kind == "image"), None)
        timed = next((m for m in reversed(media_info) if m.kind == "video"), None) or next(
            (m for m in reversed(media_info) if m.kind == "audio"), None
        )
        text = self.boxes_to_user_frame(text, media_info)
        entities = parse_grounding(text)  # parsed after conversion, so offsets match the returned text
        return GroundedOutput(
            text=text, entities=entities,
            image_size=tuple(image.original_size) if image is not None and image.original_size else None,
            duration=timed.duration if timed is not None else None,
        )
