"""Front ends over :class:`groundinggpt.api.GroundingGPT`: terminal chat, OpenAI-compatible
HTTP server and a Gradio web page, plus drawing helpers.

Each front end is its own module so that importing one never pulls in the others'
dependencies (the server needs FastAPI/uvicorn, the page needs Gradio):

- :mod:`.chat` — ``groundinggpt chat``: multi-turn terminal chat.
- :mod:`.server` — ``groundinggpt serve``: ``/v1/chat/completions`` and ``/v1/models``.
- :mod:`.web` — ``groundinggpt web``: upload media, chat, see boxes and time spans.
- :mod:`.draw` — labelled boxes on images, spans on a timeline.
"""
