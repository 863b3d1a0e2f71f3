"""The port's post-processing offline: our mask NMS and connected components, and their install.

The two operations are checked against independent references (a plain greedy NMS written
here; scipy.ndimage.label, or OpenCV where scipy is absent); the install is checked through the
port's own ``nms_masks`` and ``fill_holes_in_mask_scores`` once the project has loaded a tracker.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import torch
from transformers.models.sam3_video import modeling_sam3_video as port

import tracker.postprocess as postprocess
from tracker.postprocess import (
    OWN_CV_UTILS,
    OWN_IMPLEMENTATION,
    cc_2d,
    connected_components_opencv,
    connected_components_torch,
    generic_nms,
    install_postprocessing,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CC_IMPLEMENTATIONS = [
    pytest.param(connected_components_opencv, id="opencv"),
    pytest.param(connected_components_torch, id="torch"),
]


def plain_greedy_nms(ious: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """The textbook loop: take the best remaining, drop all that overlap it by more."""
    remaining = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    while remaining:
        best = remaining.pop(0)
        kept.append(best)
        remaining = [i for i in remaining if ious[best, i] <= threshold]
    return kept


def random_rectangles(count: int, size: int, seed: int) -> torch.Tensor:
    """(count, size, size) bool rectangles, overlapping each other by every amount."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size), dtype=bool)
    for mask in masks:
        top, left = rng.integers(0, size - 4, 2)
        height, width = rng.integers(3, size // 2, 2)
        mask[top : top + height, left : left + width] = True
    return torch.from_numpy(masks)


def reference_components(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels and per-pixel areas of one (H, W) mask, by a library we do not use."""
    try:
        from scipy import ndimage
    except ImportError:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(
            image.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        areas = stats[:, cv2.CC_STAT_AREA].copy()
    else:
        labels, _ = ndimage.label(image, structure=np.ones((3, 3), dtype=int))
        areas = np.bincount(labels.ravel())
    areas[0] = 0
    return labels, areas[labels]


def assert_matches_reference(
    mask: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor
) -> None:
    """Same shapes and dtypes as the kernel, same areas, and labels giving the same partition."""
    assert labels.shape == counts.shape == mask.shape
    assert labels.dtype == counts.dtype == torch.int32
    for image, have_labels, have_counts in zip(
        mask.cpu().numpy(), labels.cpu(), counts.cpu(), strict=True
    ):
        want_labels, want_counts = reference_components(image[0] != 0)
        np.testing.assert_array_equal(have_counts[0].numpy(), want_counts)
        ours = have_labels[0].numpy().ravel().astype(np.int64)
        theirs = want_labels.ravel().astype(np.int64)
        np.testing.assert_array_equal(ours == 0, theirs == 0)
        pairs = np.unique(np.stack([ours, theirs]), axis=1)
        assert pairs.shape[1] == len(np.unique(ours)) == len(np.unique(theirs))


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5, 0.9])
def test_generic_nms_matches_plain_greedy_nms_on_random_masks(threshold):
    masks = random_rectangles(40, 32, seed=1)
    ious = port.mask_iou(masks, masks)  # (40, 40), the port's own IoU
    scores = torch.from_numpy(np.random.default_rng(2).permutation(40) / 40.0).float()
    kept = generic_nms(ious, scores, threshold, use_iou_matrix=True)
    assert kept.dtype == torch.int64
    assert kept.tolist() == plain_greedy_nms(ious.numpy(), scores.numpy(), threshold)


def test_generic_nms_of_nothing_and_of_disjoint_detections():
    assert generic_nms(torch.zeros(0, 0), torch.zeros(0), 0.5).tolist() == []
    disjoint = torch.eye(3)
    assert generic_nms(disjoint, torch.tensor([0.1, 0.9, 0.5]), 0.5).tolist() == [1, 2, 0]


def test_generic_nms_keeps_the_lower_index_of_equal_scores():
    same = torch.ones(2, 2)
    assert generic_nms(same, torch.tensor([0.5, 0.5]), 0.5).tolist() == [0]


@pytest.mark.parametrize("implementation", CC_IMPLEMENTATIONS)
@pytest.mark.parametrize("density", [0.2, 0.45, 0.7])
def test_connected_components_match_reference_on_random_masks(implementation, density):
    """Odd height and width; densities below, at and above where 8-connected blobs merge."""
    generator = torch.Generator().manual_seed(3)
    mask = (torch.rand(5, 1, 37, 41, generator=generator) < density).to(torch.uint8)
    assert_matches_reference(mask, *implementation(mask))


@pytest.mark.parametrize("implementation", CC_IMPLEMENTATIONS)
def test_connected_components_of_empty_and_full_masks(implementation):
    mask = torch.stack([torch.zeros(1, 7, 9), torch.ones(1, 7, 9)]).to(torch.uint8)
    labels, counts = implementation(mask)
    assert not labels[0].any() and not counts[0].any()
    assert len(labels[1].unique()) == 1 and labels[1].min() > 0
    assert (counts[1] == 7 * 9).all()
    empty_batch = torch.zeros(0, 1, 4, 4, dtype=torch.uint8)
    assert implementation(empty_batch)[1].shape == (0, 1, 4, 4)


@pytest.mark.parametrize("implementation", CC_IMPLEMENTATIONS)
def test_diagonal_neighbours_are_one_component(implementation):
    """8-connectivity, as the cv-utils kernel (cc_torch) and SAM3's skimage fallback label."""
    mask = torch.tensor([[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]], dtype=torch.uint8)
    assert implementation(mask)[1].max() == 3


@pytest.mark.parametrize("implementation", CC_IMPLEMENTATIONS)
def test_connected_components_without_counts_return_zero_counts(implementation):
    mask = torch.ones(2, 1, 4, 6, dtype=torch.uint8)
    labels, counts = implementation(mask, get_counts=False)
    assert labels.min() > 0 and not counts.any()


def test_cc_2d_checks_its_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        cc_2d(torch.zeros(4, 4, dtype=torch.uint8))


def scores_with_hole_and_speck(device: str = "cpu") -> torch.Tensor:
    """(1, 1, 64, 64) mask logits: a 20x20 object with a 2x2 hole, and a 2x2 speck far from it."""
    scores = torch.full((1, 1, 64, 64), -5.0, device=device)
    scores[..., 10:30, 10:30] = 5.0
    scores[..., 19:21, 19:21] = -5.0  # the hole
    scores[..., 50:52, 50:52] = 5.0  # the speck
    return scores


def assert_hole_filled_and_speck_removed(cleaned: torch.Tensor) -> None:
    assert (cleaned[..., 10:30, 10:30] > 0).all()
    assert (cleaned[..., 50:52, 50:52] <= 0).all()
    assert (cleaned[..., 40:, :] <= 0).all()


def test_port_fills_holes_and_removes_specks_once_a_tracker_is_loaded(tiny_tracker):
    assert port.cv_utils_kernel is OWN_CV_UTILS  # tests run offline, without the Hub kernel
    fill_hole_area = tiny_tracker.model.fill_hole_area  # the port's default, 16 pixels
    cleaned = port.fill_holes_in_mask_scores(scores_with_hole_and_speck(), fill_hole_area)
    assert_hole_filled_and_speck_removed(cleaned)


def test_port_nms_drops_a_duplicate_once_a_tracker_is_loaded(tiny_tracker):
    masks = torch.full((3, 32, 32), -1.0)
    masks[0, 4:20, 4:20] = 1.0
    masks[1, 5:20, 4:20] = 1.0  # the same object, found again with a lower score
    masks[2, 24:30, 24:30] = 1.0
    keep = port.nms_masks(
        torch.tensor([0.9, 0.8, 0.7]), masks, prob_threshold=0.5, iou_threshold=0.1
    )
    assert keep.tolist() == [True, False, True]


def test_install_says_once_which_implementation_is_in_use(tiny_tracker, monkeypatch, caplog):
    monkeypatch.setattr(postprocess, "_installed", None)
    monkeypatch.setattr(port, "cv_utils_kernel", None)
    with caplog.at_level(logging.INFO, logger="tracker.postprocess"):
        assert install_postprocessing() == OWN_IMPLEMENTATION
        assert install_postprocessing() == OWN_IMPLEMENTATION
    said = [r.getMessage() for r in caplog.records if r.name == "tracker.postprocess"]
    assert len(said) == 1 and OWN_IMPLEMENTATION in said[0] and "Hub kernel unavailable" in said[0]
    assert "will be skipped" not in caplog.text  # the port's warning no longer holds
    assert port.cv_utils_kernel is OWN_CV_UTILS


@pytest.mark.gpu
@needs_cuda
def test_postprocess_runs_on_cuda_tensors_and_agrees_with_the_cpu(tiny_tracker):
    generator = torch.Generator().manual_seed(4)
    mask = (torch.rand(6, 1, 99, 133, generator=generator) < 0.5).to(torch.uint8)
    labels, counts = cc_2d(mask.cuda())
    assert labels.is_cuda and counts.is_cuda
    assert_matches_reference(mask, labels, counts)
    masks = random_rectangles(40, 32, seed=5).cuda()
    ious = port.mask_iou(masks, masks)
    scores = torch.from_numpy(np.random.default_rng(6).permutation(40) / 40.0).float().cuda()
    kept = generic_nms(ious, scores, 0.3)
    assert kept.is_cuda
    assert kept.tolist() == plain_greedy_nms(ious.cpu().numpy(), scores.cpu().numpy(), 0.3)
    cleaned = port.fill_holes_in_mask_scores(scores_with_hole_and_speck("cuda"), 16)
    assert cleaned.is_cuda
    assert_hole_filled_and_speck_removed(cleaned)
