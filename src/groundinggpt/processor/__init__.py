"""The processor: chat messages with media → model inputs, and model text → grounded results.

It is the only place where

- media placeholders are created: each image/video/audio part becomes exactly as
  many placeholder tokens as its branch emits, so the model splices by mask;
  text a user types (``"<image>"``, ``"</s>"`` ...) is tokenised as plain text and
  never becomes a special token;
- the chat template is applied and ``labels`` are built (only the assistant's
  answers and their terminators are trained);
- coordinates change frame: boxes in messages are relative to the *original*
  image and are rewritten relative to the padded square the model sees; boxes in
  model output go back the other way in :meth:`GroundingGPTProcessor.post_process`.

Messages follow the Hugging Face multimodal chat format::

    [{"role": "user", "content": [
        {"type": "image", "image": "cat.jpg"},          # path, bytes, PIL image or data: URL
        {"type": "text", "text": "Output the coordinate of the cat."}]},
     {"role": "assistant", "content": "The cat[0.100, 0.200, 0.500, 0.900]."}]

Example:
    >>> from groundinggpt.presets import tiny_processor
    >>> proc = tiny_processor()
    >>> batch = proc([{"role": "user", "content": "Hi <image>!"}])
    >>> int((batch["input_ids"] == proc.image_token_id).sum())   # typed text is not a placeholder
    0
"""

from ..modalities import MEDIA_KINDS  # re-exported: the processor's content-part types, as before
from .collate import IGNORE_INDEX, collate_rows
from .config import PROCESSOR_CONFIG_NAME, ProcessorConfig
from .conversation import GroundingGPTProcessor
from .outputs import GroundedOutput, MediaInfo

__all__ = ["GroundingGPTProcessor", "ProcessorConfig", "MediaInfo", "GroundedOutput", "collate_rows",
           "IGNORE_INDEX", "PROCESSOR_CONFIG_NAME", "MEDIA_KINDS"]
