"""Task prompts: the paper's evaluation prompts and its Table 11 template pools.

``EVAL_PROMPTS`` are the single prompts used at inference (the API helpers, the
evaluation runners); ``TEMPLATES`` are the pools training data draws from. The
placeholders are ``{exp}`` (a referring expression), ``{event}`` (an event in a
video), ``{region}`` (a box in text) and ``{time}`` (a span in text).
"""

from __future__ import annotations

EVAL_PROMPTS: dict[str, str] = {
    # Section 4.1: "we use a unified prompt like 'Output the coordinate of <exp>'".
    "rec": "Output the coordinate of {exp}.",
    "temporal_grounding": "When did {event} occur in the video?",
    "sound_localization": "What is the source of the sound in this image? Output the coordinates of the sound source.",
    "reg": "What object is present within the specified region{region}?",
    "pope": "{question} Answer the question using a single word or phrase.",
    "vqa": "{question}\nAnswer the question using a single word or phrase.",
    "caption": "Provide a brief description of the given image.",
}

# Table 11 of the paper: three examples per task family.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "image_caption": (
        "Provide a brief description of the given image.",
        "Write a terse but informative summary of the picture.",
        "Share a concise interpretation of the image provided.",
    ),
    "reg": (
        "What object is present within the specified region{region}?",
        "Can you identify the item within the region{region}?",
        "Describe the object located within the region{region}.",
    ),
    "rec": (
        "In this image, where is {exp} located?",
        "Can you identify the position of {exp} within this image?",
        "Please describe the location of {exp} in this image.",
    ),
    "object_attribute": (
        "What color is this {exp}?",
        "How many {exp} are visible within this image?",
        "How many {exp} are there in the image?",
    ),
    "video_caption": (
        "Relay a brief, clear account of the video shown.",
        "Offer a succinct explanation of the footage presented.",
        "Present a compact description of the clip's key features.",
    ),
    "video_dense_caption": (
        "Describe the content shown in the video clip{time} of this video.",
        "What can you tell me about the video segment{time} in this video?",
        "Can you provide a description of the video snippet{time}?",
    ),
    "temporal_grounding": (
        "When did {event} occur in the video?",
        "Tell me the timestamp when {event} happened.",
        "At what time does {event} take place in the video?",
    ),
    "audio_caption": (
        "Analyze the audio and provide a description of its content.",
        "Examine the audio and describe the different sounds present.",
        "Provide a detailed summary of the auditory elements in the audio clip.",
    ),
    "sound_localization": (
        "What is the cause of the sound in this given image?",
        "Can you pinpoint the source of the sound in this image?",
        "Describe the location of the sound's origin in this image.",
    ),
}
