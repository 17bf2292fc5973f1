"""Opening media files with PyAV the same way on every PyAV version we support.

PyAV before 19 decodes container and stream metadata as strict UTF-8 unless
``av.open(..., metadata_errors="ignore")`` is passed, so one file with a Latin-1
title tag fails with ``UnicodeDecodeError`` before a single frame is read. PyAV 19
always decodes metadata with ``surrogateescape`` and removed the argument: passing
it there is a ``TypeError``. Every reader in the package opens files through
:func:`open_input`, which passes the argument only where it exists.
"""

from __future__ import annotations

from typing import Any

import av


def open_kwargs(version: str) -> dict[str, str]:
    """Keyword arguments of ``av.open`` for lenient metadata on PyAV ``version``.

    >>> open_kwargs("18.1.0")
    {'metadata_errors': 'ignore'}
    >>> open_kwargs("19.0.2")
    {}
    """
    major = int(version.split(".")[0])
    return {"metadata_errors": "ignore"} if major < 19 else {}


def open_input(target: Any) -> av.container.InputContainer:
    """``av.open(target, mode="r")`` that never fails on badly encoded metadata."""
    return av.open(target, mode="r", **open_kwargs(av.__version__))
