"""Image tasks: REC on RefCOCO/+/g, POPE, VQAv2."""

from __future__ import annotations

from groundinggpt.eval import formats, metrics
from groundinggpt.eval.tasks import Sample, Task, register_task


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


@register_task
class RefCOCOTask(Task):
    """Referring expression comprehension, Acc@0.5 in original-image coordinates."""

    name = "rec"
    help = "RefCOCO / RefCOCO+ / RefCOCOg referring expression comprehension (Acc@0.5)"
    grounding = "box"
    prompt_key = "rec"
    id_scheme = '"{ref_id}_{sent_id}" (one sample per sentence)'

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--refs", required=True, help="refs(unc).p / refs(umd).p / refs(google).p")
        parser.add_argument("--instances", required=True, help="the dataset's instances.json (COCO format)")
        parser.add_argument("--images", help="folder of the COCO train2014 images (needed with --model)")
        parser.add_argument("--split", default="val", help="val, testA, testB, test ... (default: val)")

    def load(self) -> list[Sample]:
        a = self.args
        refs = formats.read_refcoco(a.refs, a.instances, split=a.split, image_root=a.images)
        return [
            Sample(
                id=f"{r.ref_id}_{r.sent_id}",
                media=[("image", r.image_path or r.image_file)],
                fields={"exp": r.expression},
                target=list(r.box_rel),
                image_size=(r.width, r.height),
                extra={"expression": r.expression, "split": r.split},
            )
            for r in refs
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        return self.first_box(answer, sample, boxes_frame, observed)

    def score_sample(self, sample, parsed, observed):
        iou = metrics.box_iou(parsed, sample.target) if parsed is not None else 0.0
        return {"correct": iou >= 0.5, "score": round(iou, 6)}

    def summarize(self, samples, records):
        out = metrics.rec_accuracy([r.get("parsed") for r in records], [s.target for s in samples])
        return {"metrics": {"Acc@0.5": out["accuracy"], "mean IoU": 100 * _mean(out["ious"])},
                "correct": out["correct"]}


@register_task
class PopeTask(Task):
    """POPE object hallucination (accuracy, precision, recall, F1, yes-ratio)."""

    name = "pope"
    help = "POPE object hallucination probing (one coco_pope_<split>.json file)"
    prompt_key = "pope"
    id_scheme = "the file's question_id"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--questions", required=True, help="coco_pope_<split>.json (JSON lines)")
        parser.add_argument("--images", help="folder of the images (COCO val2014; needed with --model)")
        parser.add_argument("--split", help="random / popular / adversarial (default: from the file name)")

    def load(self) -> list[Sample]:
        a = self.args
        questions = formats.read_pope(a.questions, split=a.split, image_root=a.images)
        return [
            Sample(
                id=str(q.question_id),
                media=[("image", q.image_path or q.image)],
                fields={"question": q.question},
                target=q.label,
                extra={"question": q.question, "label": q.label, "split": q.split},
            )
            for q in questions
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        # An empty answer is unusable (a miss), not the official code's implicit "yes".
        return metrics.pope_parse_answer(answer) if answer.strip() else None

    def score_sample(self, sample, parsed, observed):
        correct = parsed == sample.target
        return {"correct": correct, "score": float(correct)}

    def summarize(self, samples, records):
        out = metrics.pope_metrics([r.get("answer") for r in records], [s.target for s in samples])
        split = samples[0].extra.get("split") if samples else None
        keys = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return {"metrics": {k: out[k] for k in keys}, "split": split,
                "confusion": {k: out[k] for k in ("TP", "FP", "TN", "FN")}}


@register_task
class VQAv2Task(Task):
    """VQAv2 open-ended accuracy (official normalisation, 10 human answers)."""

    name = "vqav2"
    help = "VQAv2 open-ended VQA accuracy"
    prompt_key = "vqa"
    id_scheme = "the file's question_id"

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--questions", required=True, help="v2_OpenEnded_mscoco_<subtype>_questions.json")
        parser.add_argument("--annotations", required=True, help="v2_mscoco_<subtype>_annotations.json")
        parser.add_argument("--images", help="folder of the COCO images of that subtype (needed with --model)")
        parser.add_argument("--image-subtype", help="image naming subtype, e.g. val2014 (default: from the file)")

    def load(self) -> list[Sample]:
        a = self.args
        qs = formats.read_vqav2(a.questions, a.annotations, image_root=a.images,
                                image_subtype=a.image_subtype)
        return [
            Sample(
                id=str(q.question_id),
                media=[("image", q.image_path or q.image_file)],
                fields={"question": q.question},
                target=list(q.answers),
                extra={"question": q.question, "answer_type": q.answer_type,
                       "question_type": q.question_type, "reference": q.multiple_choice_answer},
            )
            for q in qs
        ]

    def parse(self, answer, sample, boxes_frame, observed):
        return answer.strip()

    def score_sample(self, sample, parsed, observed):
        acc = metrics.vqa_accuracy(parsed, sample.target)
        return {"correct": acc >= 1.0, "score": round(acc, 6)}

    def summarize(self, samples, records):
        out = metrics.vqav2_metrics(
            [r.get("parsed") for r in records], [s.target for s in samples],
            answer_types=[s.extra.get("answer_type") or "unknown" for s in samples],
        )
        return {"metrics": {"accuracy": out["overall"],
                            **{f"accuracy ({t})": v for t, v in out["per_answer_type"].items()}}}
