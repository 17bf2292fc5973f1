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


class MediaLimitError(MediaError):
    """A medium decodes to more than a configured limit allows (seconds, samples, pixels).

    Raised while decoding, as soon as the limit is passed, so the cost of a hostile
    file is bounded by the limit and not by the file.

    Attributes:
        code: ``"media_too_long"`` (seconds) or ``"media_too_large"`` (samples, pixels);
            the server's error code.
    """

    def __init__(self, message: str, code: str = "media_too_large"):
        super().__init__(message)
        self.code = code
