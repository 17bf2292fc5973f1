"""Exceptions with messages that name the offending input and what was expected."""


class GroundingGPTError(Exception):
    """Base class for every error this package raises on purpose."""


class MediaError(GroundingGPTError, ValueError):
    """A medium (image, video, audio) could not be read or has an unusable form.

    The message always names the source (a path, ``<bytes>``, ``<data: URL>`` ...)
    and says what was expected.

    Attributes:
        part: ``(message index, part index)`` of the medium in its conversation, when the
            processor raised it (front ends name the part in their own terms).
        reason: the message without that location.
    """

    part: tuple[int, int] | None = None
    reason: str | None = None


class InputError(GroundingGPTError, ValueError):
    """A message, request or sample does not have the expected structure."""
