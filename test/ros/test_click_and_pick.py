"""Click pairing and the choice of the init detection, without ROS messages (plain objects with the fields
vision_msgs has): the cross-process behaviour is in test_node_extras.py."""
from __future__ import annotations

from types import SimpleNamespace as NS

from dytrack_ros.ros.click_init import ClickBox
from dytrack_ros.ros.detections import best_detection


def test_two_clicks_make_a_box_in_any_corner_order():
    c = ClickBox(timeout_s=10)
    assert c.click(100, 80, now=0.0) is None and c.pending
    assert c.click(40, 20, now=1.0) == (40, 20, 60, 60)
    assert not c.pending


def test_a_stale_or_tiny_pair_starts_over():
    c = ClickBox(timeout_s=5)
    c.click(10, 10, now=0.0)
    assert c.click(50, 50, now=6.0) is None  # first corner forgotten; this is a new first corner
    assert c.click(52, 51, now=6.5) is None  # double click: too small, starts over again
    assert c.click(100, 90, now=7.0) == (52, 51, 48, 39)
    assert c.click(float("nan"), 3, now=8.0) is None


def _det(det_id, box_c, results):
    cx, cy, w, h = box_c
    return NS(id=det_id, bbox=NS(center=NS(position=NS(x=cx, y=cy)), size_x=w, size_y=h),
              results=[NS(hypothesis=NS(class_id=c, score=s)) for c, s in results])


def test_best_detection_by_score_class_and_minimum():
    arr = NS(detections=[_det("a", (50, 50, 20, 10), [("person", 0.3)]),
                         _det("b", (80, 60, 40, 20), [("car", 0.9), ("person", 0.6)]),
                         _det("c", (30, 30, 0, 10), [("person", 0.99)]),  # no area
                         _det("d", (10, 10, 4, 4), [])])
    pick = best_detection(arr)
    assert (pick.detection_id, pick.class_id, pick.score, pick.box) == ("b", "car", 0.9, (60, 50, 40, 20))
    pick = best_detection(arr, ["person"], min_score=0.5)
    assert (pick.detection_id, pick.class_id, pick.score) == ("b", "person", 0.6)
    assert best_detection(arr, ["person"], min_score=0.7) is None
    assert best_detection(arr, ["dog"]) is None
    assert best_detection(NS(detections=[_det("d", (10, 10, 4, 4), [])])).box == (8, 8, 4, 4)
