"""The serving front ends' pictures: :mod:`groundinggpt.draw` under the name they have always imported.

Example:
    >>> from groundinggpt.serve.draw import draw_boxes
    >>> from groundinggpt import draw
    >>> draw_boxes is draw.draw_boxes
    True
"""

from ..draw import PALETTE, colour, draw_boxes, draw_grounding, draw_timeline

__all__ = ["PALETTE", "draw_boxes", "draw_grounding", "draw_timeline", "colour"]
