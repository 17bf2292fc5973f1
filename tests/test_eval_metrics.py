"""Hand-computed checks of the published metric definitions in groundinggpt.eval.metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from groundinggpt.eval import metrics as m


@dataclass(frozen=True)
class _Box:  # any object with x1..y2 must be accepted (e.g. grounding.Box)
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class _Span:  # any object with start/end must be accepted (e.g. grounding.Span)
    start: float
    end: float


# --------------------------------------------------------------------------- REC


def test_box_iou_known_values():
    # (0,0,2,2) and (1,1,3,3): inter 1, union 4 + 4 - 1 = 7.
    assert m.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    # Half of a 10x10 box: inter 50, union 100.
    assert m.box_iou((0, 0, 10, 10), [0, 0, 10, 5]) == pytest.approx(0.5)
    assert m.box_iou(_Box(0, 0, 2, 2), np.array([0, 0, 2, 2])) == pytest.approx(1.0)
    assert m.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0  # disjoint
    assert m.box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # empty union, no division error


def test_box_iou_unusable_boxes_are_zero():
    assert m.box_iou(None, (0, 0, 1, 1)) == 0.0
    assert m.box_iou((0, 0, 1), (0, 0, 1, 1)) == 0.0
    assert m.box_iou(("a", 0, 1, 1), (0, 0, 1, 1)) == 0.0
    assert m.box_iou((float("nan"), 0, 1, 1), (0, 0, 1, 1)) == 0.0


def test_rec_accuracy_three_samples_one_miss():
    gts = [(0, 0, 10, 10)] * 3
    preds = [
        (0, 0, 10, 10),  # IoU 1.0 -> hit
        (0, 0, 10, 4),  # IoU 0.4 -> wrong
        None,  # unparseable -> miss
    ]
    out = m.rec_accuracy(preds, gts)
    assert out["accuracy"] == pytest.approx(100 / 3)  # 33.33 %
    assert (out["n"], out["correct"], out["misses"]) == (3, 1, 1)
    assert out["ious"] == pytest.approx([1.0, 0.4, 0.0])


def test_rec_accuracy_threshold_is_inclusive_and_objects_accepted():
    out = m.rec_accuracy([_Box(0, 0, 10, 5), "garbage"], [_Box(0, 0, 10, 10), (0, 0, 10, 10)])
    assert out["correct"] == 1  # IoU exactly 0.5 counts (>=)
    assert out["misses"] == 1  # a malformed prediction is a miss, not a crash
    assert out["accuracy"] == pytest.approx(50.0)


def test_rec_accuracy_bad_inputs():
    with pytest.raises(ValueError, match="2 predictions but 1"):
        m.rec_accuracy([None, None], [(0, 0, 1, 1)])
    with pytest.raises(ValueError, match="ground-truth box #0"):
        m.rec_accuracy([None], [None])
    assert m.rec_accuracy([], [])["accuracy"] == 0.0


# --------------------------------------------------------------------------- Charades-STA


def test_temporal_iou_known_values():
    assert m.temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert m.temporal_iou(_Span(2, 4), [2, 4]) == pytest.approx(1.0)
    assert m.temporal_iou((0, 1), (2, 3)) == 0.0  # disjoint
    # Reversed ends are put in order (grounding.temporal_iou's rule, the parser's too): (3, 5) vs (2, 6).
    assert m.temporal_iou((5, 3), (2, 6)) == pytest.approx(0.5)
    assert m.temporal_iou((1, 1), (1, 1)) == 0.0  # empty union
    assert m.temporal_iou(None, (0, 1)) == 0.0


def test_temporal_grounding_metrics_around_thresholds():
    gts = [(0.0, 100.0)] * 5
    preds = [
        (0.0, 29.0),  # tIoU 0.29: below every threshold
        (0.0, 31.0),  # 0.31: passes 0.3 only
        _Span(0.0, 50.0),  # 0.50: passes 0.3 and 0.5 (inclusive)
        (0.0, 71.0),  # 0.71: passes all three
        None,  # miss: tIoU 0
    ]
    out = m.temporal_grounding_metrics(preds, gts)
    assert out["ious"] == pytest.approx([0.29, 0.31, 0.5, 0.71, 0.0])
    assert out["R1@0.3"] == pytest.approx(60.0)  # 3 / 5
    assert out["R1@0.5"] == pytest.approx(40.0)  # 2 / 5
    assert out["R1@0.7"] == pytest.approx(20.0)  # 1 / 5
    assert out["mIoU"] == pytest.approx(100 * (0.29 + 0.31 + 0.5 + 0.71 + 0.0) / 5)  # 36.2
    assert (out["n"], out["misses"]) == (5, 1)


def test_temporal_grounding_custom_thresholds_and_bad_gt():
    out = m.temporal_grounding_metrics([(0, 1)], [(0, 1)], thresholds=(0.1,))
    assert out["R1@0.1"] == 100.0 and "R1@0.3" not in out
    with pytest.raises(ValueError, match="ground-truth span #0"):
        m.temporal_grounding_metrics([(0, 1)], [(0, 1, 2)])


# --------------------------------------------------------------------------- POPE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No, there is not.", "no"),
        ("No", "no"),
        ("No.", "no"),
        ("no", "no"),
        ("  No\n", "no"),  # stripped first, as LLaVA's answer files are
        ("I do not see one.", "no"),
        ("There is no cat in the image. Yes, really.", "no"),
        ("Yes.", "yes"),
        ("Yes", "yes"),
        ("There is a dog.", "yes"),
        ("Yes. There is no cat.", "yes"),  # only the first sentence counts
        # Official quirks (case-sensitive, space-split words) kept on purpose:
        ("NO", "yes"),
        ("Not sure", "yes"),
        ("There isn't", "yes"),
    ],
)
def test_pope_parse_answer_follows_official_code(text, expected):
    assert m.pope_parse_answer(text) == expected


def test_pope_metrics_handcrafted():
    rows = [
        ("No, there is not.", "no"),  # no  -> TN
        ("Yes.", "yes"),  # yes -> TP
        ("There is a dog.", "no"),  # yes -> FP
        ("no", "yes"),  # no  -> FN
        ("Yes, there is a cat in the image.", "yes"),  # TP
        (None, "yes"),  # miss: wrong answer -> FN
        ("NO", "no"),  # parsed "yes" (official quirk) -> FP
        ("There is no cat. Yes.", "no"),  # first sentence has "no" -> TN
        ("Yes", "yes"),  # TP
        ("yes", "no"),  # FP
    ]
    out = m.pope_metrics([r[0] for r in rows], [r[1] for r in rows])
    assert (out["TP"], out["FP"], out["TN"], out["FN"]) == (3, 3, 2, 2)
    assert out["n"] == 10 and out["misses"] == 1
    assert out["accuracy"] == pytest.approx(50.0)  # (3 + 2) / 10
    assert out["precision"] == pytest.approx(50.0)  # 3 / 6
    assert out["recall"] == pytest.approx(60.0)  # 3 / 5
    assert out["f1"] == pytest.approx(100 * 2 * 0.5 * 0.6 / 1.1)  # 54.545...
    assert out["yes_ratio"] == pytest.approx(600 / 9)  # 6 "yes" among the 9 answers given (the miss is not one)


def test_pope_missing_and_empty_answers_are_misses_without_a_yes_bias():
    out = m.pope_metrics([None, "", "  ", None], ["yes", "yes", "no", "no"])
    assert out["misses"] == 4 and out["accuracy"] == 0.0 and out["recall"] == 0.0
    assert out["yes_ratio"] == 0.0  # nothing answered: no ratio to report, not the labels' mix
    out = m.pope_metrics([None, "Yes", "No"], ["no", "no", "no"])
    assert out["yes_ratio"] == pytest.approx(50.0) and out["FP"] == 2 and out["TN"] == 1


def test_pope_metrics_no_positive_predictions_and_bad_label():
    out = m.pope_metrics(["No", "No"], ["yes", "no"])
    assert out["precision"] == 0.0 and out["f1"] == 0.0 and out["yes_ratio"] == 0.0
    assert out["accuracy"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="expected 'yes' or 'no'"):
        m.pope_metrics(["yes"], ["maybe"])


def test_pope_metrics_by_split():
    out = m.pope_metrics_by_split(
        ["Yes", "No", "Yes", "Yes"],
        ["yes", "no", "no", "yes"],
        ["random", "random", "adversarial", "adversarial"],
    )
    assert list(out) == ["random", "adversarial"]
    assert out["random"]["accuracy"] == pytest.approx(100.0)
    assert out["adversarial"]["accuracy"] == pytest.approx(50.0)
    assert out["adversarial"]["precision"] == pytest.approx(50.0)


# --------------------------------------------------------------------------- VQAv2


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two", "2"),
        ("Two dogs.", "2 dogs"),
        ("none", "0"),
        ("The cat's toy", "cat's toy"),
        ("dont", "don't"),
        ("yes!", "yes"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("a man.", "man"),
        ("red/white", "red white"),  # not next to a space -> becomes a space
        ("red / white", "red white"),  # next to a space -> deleted
        ("hot-dog", "hot dog"),
        (" \n yes \t", "yes"),
        ("10:30", "10:30"),  # ':' is not in the official punctuation list
    ],
)
def test_vqa_normalize_answer(raw, normalised):
    assert m.vqa_normalize_answer(raw) == normalised


def test_vqa_accuracy_leave_one_out():
    # Two of ten humans said "2", eight said "3"; the model says "two" -> "2".
    # Leaving out one of the two "2"s: 1 match among the other 9 -> min(1, 1/3) = 1/3.
    # Leaving out one of the eight "3"s: 2 matches -> 2/3.
    # Mean over the 10 subsets: (2 * 1/3 + 8 * 2/3) / 10 = 18/30 = 0.6.
    assert m.vqa_accuracy("two", ["2", "2"] + ["3"] * 8) == pytest.approx(0.6)
    # Three agree: (3 * 2/3 + 7 * 1) / 10 = 0.9.
    assert m.vqa_accuracy("Yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    # One agrees: (1 * 0 + 9 * 1/3) / 10 = 0.3.
    assert m.vqa_accuracy("cat", ["cat"] + ["dog"] * 9) == pytest.approx(0.3)
    # All ten agree; the prediction is normalised first, so "Yes." matches.
    assert m.vqa_accuracy("Yes.", ["yes"] * 10) == pytest.approx(1.0)
    assert m.vqa_accuracy("no", ["yes"] * 10) == 0.0
    assert m.vqa_accuracy(None, ["yes"] * 10) == 0.0
    with pytest.raises(ValueError):
        m.vqa_accuracy("yes", [])


def test_vqav2_metrics_overall_and_per_type():
    out = m.vqav2_metrics(
        ["two", "yes", None],
        [["2", "2"] + ["3"] * 8, ["yes"] * 10, ["no"] * 10],
        answer_types=["number", "yes/no", "yes/no"],
        question_types=["how many", "is the", "is the"],
    )
    assert out["overall"] == pytest.approx(100 * (0.6 + 1.0 + 0.0) / 3)  # 53.33
    assert out["per_answer_type"] == pytest.approx({"number": 60.0, "yes/no": 50.0})
    assert out["per_question_type"] == pytest.approx({"how many": 60.0, "is the": 50.0})
    assert (out["n"], out["misses"]) == (3, 1)
    assert "per_answer_type" not in m.vqav2_metrics(["yes"], [["yes"] * 10])


# --------------------------------------------------------------------------- VGG-SS


def test_rasterize_boxes_truncation_clipping_union():
    # 224 * 0.1 = 22.4 -> 22, 224 * 0.2 = 44.8 -> 44: a 22 x 22 square.
    small = m.rasterize_boxes([(0.1, 0.1, 0.2, 0.2)])
    assert small.shape == (224, 224) and small.sum() == 22 * 22
    assert small[22, 22] == 1 and small[44, 44] == 0 and small[21, 30] == 0
    assert m.rasterize_boxes([(-0.5, -0.5, 2.0, 2.0)]).sum() == 224 * 224  # clipped
    # Pixel boxes in a 200 x 100 frame: (0, 0, 100, 100) is the left half.
    left = m.rasterize_boxes([(0, 0, 100, 100)], 200, 100)
    assert left.sum() == 112 * 224 and left[:, :112].all()
    union = m.rasterize_boxes([(0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)])
    assert union.max() == 1.0 and union.sum() == 2 * 112 * 112 - 56 * 56
    assert m.rasterize_boxes([None, (1, 2)]).sum() == 0  # unusable boxes skipped


def test_ciou_known_values():
    gt = m.rasterize_boxes([(0, 0, 0.5, 1)])  # 112 columns
    assert m.ciou(m.rasterize_boxes([(0, 0, 0.5, 1)]), gt) == pytest.approx(1.0)
    # Quarter-width box inside the GT: 56 / (112 + 0) = 0.5.
    assert m.ciou(m.rasterize_boxes([(0, 0, 0.25, 1)]), gt) == pytest.approx(0.5)
    # Box over columns 56..168: inter 56, outside-GT part 56 -> 56 / (112 + 56) = 1/3.
    assert m.ciou(m.rasterize_boxes([(0.25, 0, 0.75, 1)]), gt) == pytest.approx(1 / 3)
    # Two overlapping GT boxes, prediction = the first: 112^2 / (2 * 112^2 - 56^2) = 4/7.
    gt2 = m.rasterize_boxes([(0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)])
    assert m.ciou(m.rasterize_boxes([(0, 0, 0.5, 0.5)]), gt2) == pytest.approx(4 / 7)
    empty = np.zeros((224, 224))
    assert m.ciou(empty, empty) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        m.ciou(np.zeros((2, 2)), np.zeros((3, 3)))


def test_success_auc_is_trapezoid_over_21_thresholds():
    assert m.vggss_thresholds()[10] == 0.5 and len(m.vggss_thresholds()) == 21
    assert m.success_auc([1.0]) == pytest.approx(1.0)
    # Success 1 for t <= 0.5, 0 after: 0.5 + a 0.05-wide triangle of height 1 -> 0.525
    # (a sum/len average would give 11/21 = 0.5238).
    assert m.success_auc([0.5]) == pytest.approx(0.525)
    assert m.success_auc([0.0]) == pytest.approx(0.025)
    # cIoUs (1, 0.5, 0, 0.25): success 1 at t=0, 3/4 for t in (0, 0.25], 1/2 for
    # (0.25, 0.5], 1/4 for (0.5, 1].  Trapezoids (x 0.05):
    # (1+.75)/2 + 4*.75 + (.75+.5)/2 + 4*.5 + (.5+.25)/2 + 9*.25 = 9.125 -> 0.45625.
    assert m.success_auc([1.0, 0.5, 0.0, 0.25]) == pytest.approx(0.45625)
    assert m.success_auc([]) == 0.0


def test_vggss_metrics_known_set():
    gt = [[(0, 0, 0.5, 1)]] * 3
    preds = [(0, 0, 0.5, 1), _Box(0, 0, 0.25, 1), None]  # cIoU 1, 0.5, 0 (miss)
    out = m.vggss_metrics(preds, gt)
    assert out["cious"] == pytest.approx([1.0, 0.5, 0.0])
    assert out["cIoU@0.5"] == pytest.approx(200 / 3)  # percent, as every rate (the official code: 0.667)
    # Success: 1 at t=0, 2/3 for t in (0, 0.5], 1/3 for (0.5, 1]:
    # (5/6 + 9 * 2/3 + 1/2 + 9 * 1/3) * 0.05 = 10.3333 * 0.05.
    assert out["AUC"] == pytest.approx(100 * (5 / 6 + 6 + 0.5 + 3) * 0.05)
    assert out["mean_cIoU"] == pytest.approx(50.0)
    assert (out["n"], out["misses"]) == (3, 1)


def test_vggss_metrics_pixel_sizes_and_bad_gt():
    out = m.vggss_metrics([(0, 0, 50, 100)], [[(0, 0, 100, 100)]], sizes=[(200, 100)])
    assert out["cious"] == pytest.approx([0.5])
    with pytest.raises(ValueError, match="non-empty list of boxes"):
        m.vggss_metrics([None], [[]])
