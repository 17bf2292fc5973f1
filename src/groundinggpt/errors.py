"""Exceptions with messages that name the offending input and what was expected."""


class GroundingGPTError(Exception):
    """Base class for every error this package raises on purpose."""


class MediaError(GroundingGPTError, ValueError):
    """A medium (image, video, audio) could not be read or has an unusable form.

    The message always names the source (a path, ``<bytes>``, ``<data: URL>`` ...)
    and says what was expected.
    """


class InputError(GroundingGPTError, ValueError):
    """A message, request or sample does not have the expected structure."""
