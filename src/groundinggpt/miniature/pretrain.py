"""Pretraining of the miniature "CLIP" image tower, "ImageBind" audio tower and "Vicuna" LLM.

Each function trains one part from random initialisation on :mod:`.corpus` data and returns
it with a small log (losses, accuracies, seconds). ``scripts/pretrain_miniature.py`` runs all
three and writes the committed checkpoints (``groundinggpt/assets/miniature``).

- :func:`pretrain_vision`: CLIP's symmetric InfoNCE between the tower's CLS embedding and a
  small text encoder's caption embedding, plus per-patch auxiliary heads on the feature
  layer GroundingGPT reads (layer -2): what covers the patch. The text encoder and the heads
  are thrown away; only the tower is kept (like CLIP's vision tower in LLaVA).
- :func:`pretrain_audio`: the same InfoNCE between the ImageBind-style audio tower's
  (L2-normalised) clip embedding and the caption embedding.
- :func:`pretrain_llm`: next-token prediction on text-only chats in the processor's own
  template (answers only, like Vicuna's supervised fine-tuning).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.dataset import DataCollator
from .corpus import NUM_COLOUR_CLASSES, NUM_SHAPE_CLASSES, NUM_SIZE_CLASSES, ImageCorpus, normalise_pixels

__all__ = ["TextEncoder", "pretrain_vision", "pretrain_audio", "pretrain_llm", "cosine_lr", "validation_loss"]


class TextEncoder(nn.Module):
    """A 2-layer transformer over caption tokens, mean-pooled and projected (CLIP's text side, tiny)."""

    def __init__(self, vocab_size: int, width: int = 128, out_dim: int = 128, layers: int = 2,
                 heads: int = 4, max_len: int = 96):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.zeros(1, max_len, width))
        nn.init.normal_(self.pos, std=0.01)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, out_dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.pos[:, : ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=~mask.bool())
        x = self.norm(x)
        m = mask.unsqueeze(-1).to(x.dtype)
        return self.proj((x * m).sum(1) / m.sum(1).clamp(min=1))


def _tokenize(tokenizer, texts: list[str], max_len: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(texts, add_special_tokens=False, padding=True, truncation=True, max_length=max_len,
                    return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> tuple[torch.Tensor, float]:
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * a @ b.t()
    target = torch.arange(len(a))
    loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    acc = (logits.argmax(1) == target).float().mean().item()
    return loss, acc


def _log(log: list[dict[str, Any]], say: Callable[[str], None] | None, every: int, step: int, **values: Any) -> None:
    entry = {"step": step, **{k: round(float(v), 4) for k, v in values.items()}}
    log.append(entry)
    if say is not None and (step % every == 0):
        say("  " + " ".join(f"{k}={v}" for k, v in entry.items()))


# ------------------------------------------------------------------------------------------ vision


class PatchHeads(nn.Module):
    """Linear read-outs of each patch feature: what covers the patch (colour, shape, size class,
    4x4 cell coverage map) and, self-supervised, which grid row and column the patch is in."""

    def __init__(self, width: int, grid: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.colour = nn.Linear(width, NUM_COLOUR_CLASSES)
        self.shape = nn.Linear(width, NUM_SHAPE_CLASSES)
        self.size = nn.Linear(width, NUM_SIZE_CLASSES)
        self.cells = nn.Linear(width, 16)
        self.row = nn.Linear(width, grid)
        self.col = nn.Linear(width, grid)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.norm(x)
        return {"colour": self.colour(x), "shape": self.shape(x), "size": self.size(x), "cells": self.cells(x),
                "row": self.row(x), "col": self.col(x)}


def _patch_losses(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    losses, accs = [], {}
    for key in ("colour", "shape", "size"):
        logits = out[key].flatten(0, 1)
        target = batch[key].flatten()
        losses.append(F.cross_entropy(logits, target))
        fg = target > 0
        accs[f"{key}_acc"] = (logits[fg].argmax(-1) == target[fg]).float().mean().item() if fg.any() else 1.0
    cells = out["cells"]
    losses.append(F.binary_cross_entropy_with_logits(cells, batch["cells"]))
    accs["cells_acc"] = ((cells > 0).float() == batch["cells"]).float().mean().item()
    if "row" in out:
        n, p, grid = out["row"].shape
        index = torch.arange(p)
        for key, target in (("row", index // grid), ("col", index % grid)):
            target = target.expand(n, p).reshape(-1)
            logits = out[key].reshape(-1, grid)
            losses.append(F.cross_entropy(logits, target))
            accs[f"{key}_acc"] = (logits.argmax(-1) == target).float().mean().item()
    return sum(losses), accs


def pretrain_vision(
    tower: nn.Module,
    tokenizer,
    corpus: ImageCorpus,
    *,
    steps: int = 3000,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    feature_layer: int = -2,
    aux_weight: float = 1.0,
    noise: float = 0.03,
    seed: int = 0,
    say: Callable[[str], None] | None = print,
    log_every: int = 100,
    validation: ImageCorpus | None = None,
) -> dict[str, Any]:
    """CLIP-style pretraining of a ``CLIPVisionModel`` (in place) on captions + patch targets.

    Args:
        tower: the image tower to train (its config fixes the image and patch size).
        tokenizer: tokenises the captions (the tiny LLM's tokenizer).
        corpus: images, captions and patch targets (:func:`.corpus.image_corpus`).
        steps / batch_size / lr / weight_decay: AdamW with linear warm-up and cosine decay.
        feature_layer: the hidden state the patch heads read (what GroundingGPT feeds its adapter).
        aux_weight: weight of the patch losses beside the contrastive loss.
        noise: std of Gaussian pixel noise (in normalised units) added as augmentation, so that
            the tower also reads H.264-decoded video frames.
        validation: held-out corpus for the final contrastive / patch accuracies.
    """
    torch.manual_seed(seed)
    width = tower.config.hidden_size
    text = TextEncoder(len(tokenizer), width=128, out_dim=128)
    proj = nn.Linear(width, 128, bias=False)
    grid = tower.config.image_size // tower.config.patch_size
    heads = PatchHeads(width, grid)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*tower.parameters(), *text.parameters(), *proj.parameters(), *heads.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    ids_all, mask_all = _tokenize(tokenizer, corpus.captions)
    pixels_all = normalise_pixels(corpus.images)
    targets = {"colour": torch.from_numpy(corpus.colour), "shape": torch.from_numpy(corpus.shape),
               "size": torch.from_numpy(corpus.size), "cells": torch.from_numpy(corpus.cells)}
    gen = torch.Generator().manual_seed(seed)
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    tower.train()
    warmup = max(1, steps // 30)
    perm = torch.randperm(len(corpus), generator=gen)
    cursor = 0
    for step in range(steps):
        if cursor + batch_size > len(perm):
            perm, cursor = torch.randperm(len(corpus), generator=gen), 0
        idx = perm[cursor : cursor + batch_size]
        cursor += batch_size
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        pixels = pixels_all[idx]
        if noise:
            pixels = pixels + noise * torch.randn(pixels.shape, generator=gen)
        out = tower(pixel_values=pixels, output_hidden_states=True, return_dict=True)
        img = proj(out.pooler_output)
        ids, mask = ids_all[idx], mask_all[idx]
        keep = mask.sum(0) > 0
        txt = text(ids[:, keep], mask[:, keep])
        clip_loss, clip_acc = _clip_loss(img, txt, logit_scale)
        patch_out = heads(out.hidden_states[feature_layer][:, 1:])
        patch_loss, accs = _patch_losses(patch_out, {k: v[idx] for k, v in targets.items()})
        loss = clip_loss + aux_weight * patch_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _log(log, say, log_every, step, loss=loss.item(), clip=clip_loss.item(), clip_acc=clip_acc,
             patch=patch_loss.item(), **accs, seconds=time.perf_counter() - t0)
    tower.eval()
    result: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "lr": lr, "seconds": time.perf_counter() - t0,
                              "samples": len(corpus), "final": log[-1] if log else {}}
    if validation is not None:
        with torch.no_grad():
            n = min(len(validation), 512)
            pixels = normalise_pixels(validation.images[:n])
            out = tower(pixel_values=pixels, output_hidden_states=True, return_dict=True)
            ids, mask = _tokenize(tokenizer, validation.captions[:n])
            text.eval()
            _, acc256 = _clip_loss(proj(out.pooler_output[:256]), text(ids[:256], mask[:256]), logit_scale)
            patch_out = heads(out.hidden_states[feature_layer][:, 1:])
            vt = {"colour": torch.from_numpy(validation.colour[:n]), "shape": torch.from_numpy(validation.shape[:n]),
                  "size": torch.from_numpy(validation.size[:n]), "cells": torch.from_numpy(validation.cells[:n])}
            _, accs = _patch_losses(patch_out, vt)
        result["validation"] = {"clip_acc_in_256": round(acc256, 4), **{k: round(v, 4) for k, v in accs.items()}}
        if say:
            say(f"  validation: {result['validation']}")
    result["log"] = log
    return result


# ------------------------------------------------------------------------------------------ audio


def pretrain_audio(
    encoder: nn.Module,
    tokenizer,
    features: torch.Tensor,
    captions: list[str],
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    say: Callable[[str], None] | None = print,
    log_every: int = 100,
    validation: tuple[torch.Tensor, list[str]] | None = None,
) -> dict[str, Any]:
    """ImageBind-style pretraining of the audio tower (in place): clip embedding ↔ caption.

    Args:
        encoder: an :class:`~groundinggpt.models.audio_encoder.ImageBindAudioEncoder`.
        features: ``[N, clips, 1, mel, frames]`` fbanks as the processor makes them; every clip
            of an audio is paired with the audio's caption (GroundingGPT feeds clips one by one).
        captions: one caption per audio.
    """
    torch.manual_seed(seed)
    out_dim = encoder.config.out_dim
    text = TextEncoder(len(tokenizer), width=128, out_dim=out_dim)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*encoder.parameters(), *text.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    ids_all, mask_all = _tokenize(tokenizer, captions)
    caption_ids = torch.tensor([sorted(set(captions)).index(c) for c in captions])
    gen = torch.Generator().manual_seed(seed)
    n, clips = features.shape[:2]
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    encoder.train()
    warmup = max(1, steps // 30)
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        clip_idx = torch.randint(0, clips, (batch_size,), generator=gen)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        emb = encoder(features[idx, clip_idx])
        ids, mask = ids_all[idx], mask_all[idx]
        keep = mask.sum(0) > 0
        txt = text(ids[:, keep], mask[:, keep])
        # Audios with the same caption are not negatives of each other (few distinct captions).
        cap = caption_ids[idx]
        same = (cap[:, None] == cap[None, :]) & ~torch.eye(batch_size, dtype=torch.bool)
        a, b = F.normalize(emb, dim=-1), F.normalize(txt, dim=-1)
        logits = (logit_scale.exp().clamp(max=100) * a @ b.t()).masked_fill(same, -1e4)
        target = torch.arange(batch_size)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
        acc = (logits.argmax(1) == target).float().mean().item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _log(log, say, log_every, step, loss=loss.item(), acc=acc, seconds=time.perf_counter() - t0)
    encoder.eval()
    result: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "lr": lr, "seconds": time.perf_counter() - t0,
                              "audios": n, "final": log[-1] if log else {}}
    if validation is not None:
        vfeat, vcaps = validation
        with torch.no_grad():
            text.eval()
            emb = F.normalize(encoder(vfeat[:, 0]), dim=-1)
            uniq = sorted(set(vcaps))
            ids, mask = _tokenize(tokenizer, uniq)
            t = F.normalize(text(ids, mask), dim=-1)
            pred = (emb @ t.t()).argmax(1)
            truth = torch.tensor([uniq.index(c) for c in vcaps])
            acc = (pred == truth).float().mean().item()
        result["validation"] = {"caption_retrieval_acc": round(acc, 4), "captions": len(uniq), "audios": len(vcaps)}
        if say:
            say(f"  validation: {result['validation']}")
    result["log"] = log
    return result


# ------------------------------------------------------------------------------------------ LLM


def encode_chats(processor, chats: list[list[tuple[str, str]]], max_length: int = 128) -> list[tuple[list[int], list[int]]]:
    """Text-only chats → (input ids, labels) with the processor's template (answers trained)."""
    out = []
    for turns in chats:
        messages = []
        for user, assistant in turns:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        batch = processor(messages, add_generation_prompt=False, padding_side="right", return_labels=True)
        ids = batch["input_ids"][0].tolist()[:max_length]
        labels = batch["labels"][0].tolist()[:max_length]
        out.append((ids, labels))
    return out


def greedy_answerer(llm: nn.Module, processor, max_new_tokens: int = 40) -> Callable[[str], str]:
    """question → the LLM's greedy answer in the processor's chat template (text only)."""

    def answer(question: str) -> str:
        ids = processor([{"role": "user", "content": question}], add_generation_prompt=True)["input_ids"]
        was_training = llm.training
        llm.eval()
        with torch.no_grad():
            out = llm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                               do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
        llm.train(was_training)
        return processor.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    return answer


def validation_loss(model: nn.Module, encoded: list[tuple[list[int], list[int]]], pad_id: int,
                    device: str = "cpu") -> float:
    """Mean next-token loss on the answers of ``encoded`` chats (batches of 64), rounded to 4 digits."""
    collator = DataCollator(pad_token_id=pad_id)
    model.to(device).eval()
    losses = []
    with torch.no_grad():
        for k in range(0, len(encoded), 64):
            batch = collator([{"input_ids": torch.tensor(i), "labels": torch.tensor(lab),
                               "attention_mask": torch.ones(len(i), dtype=torch.long)} for i, lab in encoded[k:k + 64]])
            losses.append(model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                                labels=batch["labels"].to(device)).loss.item())
    return round(sum(losses) / len(losses), 4)


def pretrain_llm(
    model: nn.Module,
    encoded: list[tuple[list[int], list[int]]],
    *,
    pad_id: int,
    steps: int = 1500,
    batch_size: int = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    say: Callable[[str], None] | None = print,
    log_every: int = 100,
    validation: list[tuple[list[int], list[int]]] | None = None,
    bf16: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train a causal LM (in place) on encoded chats; loss on the answers only.

    ``device`` may be ``"cuda"``: the batches are drawn on the CPU as on a CPU run (same
    seed, same samples); the model is moved there and back.
    """
    torch.manual_seed(seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(seed)
    log: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    model.train()
    warmup = max(1, steps // 30)

    # The training collator (dynamic padding, labels padded with -100); items become tensors once.
    collator = DataCollator(pad_token_id=pad_id)

    def as_items(pairs):
        return [{"input_ids": torch.tensor(i), "labels": torch.tensor(lab), "attention_mask": torch.ones(len(i), dtype=torch.long)}
                for i, lab in pairs]

    train_items = as_items(encoded)

    def collate(items):
        batch = collator(items)
        return batch["input_ids"].to(device), batch["labels"].to(device), batch["attention_mask"].to(device)

    for step in range(steps):
        idx = torch.randint(0, len(encoded), (batch_size,), generator=gen).tolist()
        ids, labels, att = collate([train_items[i] for i in idx])
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr, warmup)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _log(log, say, log_every, step, loss=loss.item(), seconds=time.perf_counter() - t0)
    model.eval()
    result: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "lr": lr, "seconds": time.perf_counter() - t0,
                              "chats": len(encoded), "final": log[-1] if log else {}}
    if validation:
        result["validation"] = {"loss": validation_loss(model, validation, pad_id, device)}
        if say:
            say(f"  validation: {result['validation']}")
    model.to("cpu")
    result["log"] = log
    return result
