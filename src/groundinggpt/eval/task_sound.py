"""Sound-source localisation on VGG-SS: one frame + its audio → a box; cIoU@0.5 and AUC."""

from __future__ import annotations

import os

from groundinggpt.errors import InputError
from groundinggpt.eval import formats, metrics
from groundinggpt.eval.tasks import Sample, Task, register_task


@register_task
class VGGSSTask(Task):
    """VGG-SS: the predicted box is rasterised on the 224×224 grid against the annotated boxes."""

    name = "vggss"
    media_flags = "--images / --audio"
    help = "VGG-SS sound source localisation (cIoU@0.5, AUC)"
    grounding = "box"
    prompt_key = "sound_localization"
    id_scheme = 'the clip id "file" of vggss.json'
    score_label = "cIoU"
    scoring_needs = "scoring needs --annotations; with --boxes-frame square also --images (the frame sizes)"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--annotations", required=True, help="metadata/vggss.json")
        parser.add_argument("--images", help="folder of <file>.jpg frames (needed with --model, and with "
                                             "--predictions --boxes-frame square for the frame sizes)")
        parser.add_argument("--audio", help="folder of <file>.wav audio (needed with --model)")

    def load(self) -> list[Sample]:
        a = self.args
        clips = formats.read_vggss(a.annotations, frame_root=a.images)
        return [
            Sample(
                id=c.file,
                media=[("image", c.frame_path or f"{c.file}.jpg"),
                       ("audio", os.path.join(a.audio or "", f"{c.file}.wav"))],
                target=[list(b) for b in c.boxes],
                extra={"class": c.cls},
            )
            for c in clips
        ]

    def check_scoring_options(self, boxes_frame):
        if boxes_frame == "square" and not self.args.images:
            raise InputError("vggss --predictions --boxes-frame square needs --images: each frame's size converts "
                             "its boxes to the original frame")

    def parse(self, answer, sample, boxes_frame, observed):
        return self.first_box(answer, sample, boxes_frame, observed)

    def score_sample(self, sample, parsed, observed):
        c = metrics.vggss_metrics([parsed], [sample.target])["cious"][0]
        return {"correct": c >= 0.5, "score": round(c, 6)}

    def summarize(self, samples, records):
        out = metrics.vggss_metrics([r.get("parsed") for r in records], [s.target for s in samples])
        return {"metrics": {"cIoU@0.5": out["cIoU@0.5"], "AUC": out["AUC"], "mean cIoU": out["mean_cIoU"]}}
