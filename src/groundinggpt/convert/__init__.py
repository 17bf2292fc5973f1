"""Converters from other checkpoint layouts into a project model folder.

- :mod:`.lego`: the authors' released GroundingGPT-7B (``model_type`` LEGO), with the
  key table in :mod:`.lego_keys`; ``groundinggpt convert lego SRC --vision CLIP --output DST``.
"""

from .lego import ConversionError, convert_lego, is_lego_folder, lego_folder_error

__all__ = ["ConversionError", "convert_lego", "is_lego_folder", "lego_folder_error"]
