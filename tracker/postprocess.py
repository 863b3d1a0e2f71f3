"""The port's mask post-processing without the Hub: mask NMS and 2-D connected components.

transformers' SAM3 video port loads the Hub kernel ``kernels-community/cv-utils`` for three steps:
detection NMS (``nms_masks``), hole filling and sprinkle removal (``fill_holes_in_mask_scores``).
When the kernel cannot load (the ``kernels`` package absent, no network, an air-gapped camera
site) the port skips all three, and streamed masks keep the duplicates, specks and holes the
port's offline results do not have. This module implements the two operations the port calls on
that kernel, with the kernel's signatures, and ``install_postprocessing`` hands them to the port
when the Hub kernel is unavailable.

Examples:
    >>> import torch
    >>> from tracker.postprocess import cc_2d, generic_nms
    >>> ious = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    >>> generic_nms(ious, torch.tensor([0.2, 0.8]), 0.5).tolist()
    [1]
    >>> mask = torch.tensor([[[[1, 0, 0, 1], [1, 0, 0, 0]]]], dtype=torch.uint8)
    >>> cc_2d(mask)[1].tolist()
    [[[[2, 0, 0, 1], [2, 0, 0, 0]]]]
"""

from __future__ import annotations

import importlib
import logging
import threading
import types
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

PORT_MODULE = "transformers.models.sam3_video.modeling_sam3_video"
HUB_KERNEL = "Hub kernel"
OWN_IMPLEMENTATION = "sam3-stream's own"

# The 3x3 neighbourhood, centre included: 8-connectivity, as the cv-utils kernel's connected
# components (cc_torch's block-based union find also joins diagonal blocks) and the original SAM3
# CPU fallback (skimage.measure.label, full connectivity) both label.
_NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in range(3) for dx in range(3))


def generic_nms(
    ious: torch.Tensor,
    probs: torch.Tensor,
    iou_threshold: float,
    use_iou_matrix: bool = True,
) -> torch.Tensor:
    """Greedy non-maximum suppression over a precomputed IoU matrix (the cv-utils signature).

    The highest-scoring detection is kept and every other with IoU above ``iou_threshold`` to
    it is suppressed, then the next surviving one, and so on: ``torchvision.ops.nms`` with mask
    IoUs in place of box IoUs. Equal scores keep the lower index first.

    Args:
        ious: (N, N) float pairwise IoU of the detections.
        probs: (N,) float score of each detection.
        iou_threshold: a detection overlapping a kept one by more than this is dropped.
        use_iou_matrix: must be True (the port always passes an IoU matrix, never boxes).

    Returns:
        (K,) int64 indices into ``probs`` of the kept detections, by descending score, on
        ``probs``' device.
    """
    if not use_iou_matrix:
        raise NotImplementedError("generic_nms takes a precomputed IoU matrix only")
    count = probs.shape[0]
    if count == 0:
        return torch.empty(0, dtype=torch.long, device=probs.device)
    order = torch.sort(probs, descending=True, stable=True).indices  # (N,) best first
    # (N, N) bool in score order: row i would suppress column j. The greedy pass is sequential
    # and N is the detector's query count (hundreds at most), so it runs on the host, as
    # torchvision's CUDA NMS does after building its overlap bitmask on the device.
    suppresses = (ious[order][:, order] > iou_threshold).cpu().numpy()
    alive = np.ones(count, dtype=bool)
    for i in range(count):
        if alive[i]:
            alive[i + 1 :] &= ~suppresses[i, i + 1 :]
    return order[torch.from_numpy(alive).to(order.device)]


def cc_2d(mask: torch.Tensor, get_counts: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """8-connected components of each mask in a batch (the cv-utils signature).

    CPU tensors are labelled by OpenCV, one mask at a time; tensors on any other device by
    ``connected_components_torch`` without leaving the device.

    Args:
        mask: (N, 1, H, W) uint8, non-zero is foreground. H and W may be odd.
        get_counts: also return each pixel's component area (zeros otherwise, as the kernel).

    Returns:
        labels: (N, 1, H, W) int32, 0 on background, one positive id per component of a mask.
            Only the partition is defined: ids differ between the CPU and the device paths.
        counts: (N, 1, H, W) int32, each foreground pixel's component area, 0 on background.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (N, 1, H, W); got {tuple(mask.shape)}")
    if mask.device.type == "cpu":
        return connected_components_opencv(mask, get_counts)
    return connected_components_torch(mask, get_counts)


def connected_components_opencv(
    mask: torch.Tensor, get_counts: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cc_2d`` on the CPU: ``cv2.connectedComponentsWithStats`` per mask, 8-connected."""
    images = mask.ne(0).to(torch.uint8).contiguous().numpy()  # (N, 1, H, W) 0/1
    labels = np.zeros(images.shape, dtype=np.int32)
    counts = np.zeros(images.shape, dtype=np.int32)
    for k in range(images.shape[0]):
        _, image_labels, stats, _ = cv2.connectedComponentsWithStats(
            images[k, 0], connectivity=8, ltype=cv2.CV_32S
        )
        labels[k, 0] = image_labels
        if get_counts:
            areas = stats[:, cv2.CC_STAT_AREA].astype(np.int32)  # (components + 1,)
            areas[0] = 0  # label 0 is the background
            counts[k, 0] = areas[image_labels]
    return torch.from_numpy(labels), torch.from_numpy(counts)


def connected_components_torch(
    mask: torch.Tensor, get_counts: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cc_2d`` in torch alone, on the mask's device: min-label propagation with union-find.

    Every foreground pixel holds a parent pointer (a flat pixel index in its own component),
    starting at itself. Each round hooks every pixel and its root under the smallest parent
    among its 8 neighbours, then halves every path by pointer jumping; when a round changes
    nothing, each pixel points at the smallest index of its component. Rounds grow with the log
    of a component's extent for blob-like masks, not with its pixel count.

    Returns:
        As ``cc_2d``; a component's label is 1 + the raster index (within its mask) of its first
        pixel.
    """
    batch, _, height, width = mask.shape
    device = mask.device
    foreground = mask[:, 0] != 0  # (N, H, W) bool
    total = batch * height * width
    flat_index = torch.arange(total, device=device)  # (N*H*W,) int64
    foreground_index = flat_index[foreground.reshape(-1)]  # (F,) flat index of each fg pixel
    parent = flat_index.clone()  # (N*H*W,) int64; background pixels keep pointing at themselves
    while foreground_index.numel() > 0:
        previous = parent.clone()
        # (N, H, W); ``total`` exceeds every index: background and the border join nothing
        grid = torch.where(foreground, parent.view(batch, height, width), total)
        padded = F.pad(grid, (1, 1, 1, 1), value=total)  # (N, H+2, W+2)
        smallest = grid
        for dy, dx in _NEIGHBOUR_OFFSETS:
            smallest = torch.minimum(smallest, padded[:, dy : dy + height, dx : dx + width])
        neighbour_min = smallest.reshape(-1)[foreground_index]  # (F,)
        parent.scatter_reduce_(0, parent[foreground_index], neighbour_min, reduce="amin")
        parent[foreground_index] = torch.minimum(parent[foreground_index], neighbour_min)
        for _ in range(2):
            parent[foreground_index] = parent[parent[foreground_index]]
        if torch.equal(parent, previous):
            break
    roots = parent.view(batch, 1, height, width)
    fg = foreground.unsqueeze(1)  # (N, 1, H, W)
    labels = torch.where(fg, roots % (height * width) + 1, 0).to(torch.int32)
    if not get_counts:
        return labels, torch.zeros_like(labels)
    areas = torch.bincount(parent[foreground_index], minlength=total)  # (N*H*W,) per root
    counts = torch.where(fg, areas[roots], 0).to(torch.int32)
    return labels, counts


OWN_CV_UTILS = types.SimpleNamespace(generic_nms=generic_nms, cc_2d=cc_2d)
"""What the port's ``cv_utils_kernel`` becomes when the Hub kernel cannot load."""

_install_lock = threading.Lock()
_installed: str | None = None


class _Collect(logging.Filter):
    """Holds back the port's "will be skipped" warning: it stops being true once we install."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.messages.append(record.getMessage())
        return False


def install_postprocessing() -> str:
    """Make the port's NMS, hole filling and sprinkle removal run; once per process.

    Tries the port's own Hub kernel load first (quick when offline), and when that fails sets
    the port's ``cv_utils_kernel`` to ``OWN_CV_UTILS``. Logs once, at INFO, which is in use.

    Returns:
        ``HUB_KERNEL`` or ``OWN_IMPLEMENTATION``.
    """
    global _installed
    with _install_lock:
        if _installed is not None:
            return _installed
        port: Any = importlib.import_module(PORT_MODULE)
        port_logger = logging.getLogger(PORT_MODULE)
        held_back = _Collect()
        port_logger.addFilter(held_back)
        try:
            port._load_cv_utils_kernel_once()
        finally:
            port_logger.removeFilter(held_back)
        if port.cv_utils_kernel:
            _installed = HUB_KERNEL
            logger.info(
                "mask NMS, hole filling, sprinkle removal: Hub kernel kernels-community/cv-utils"
            )
        else:
            port.cv_utils_kernel = OWN_CV_UTILS
            _installed = OWN_IMPLEMENTATION
            reason = " ".join(held_back.messages).split(". NMS post-processing")[0] or "not loaded"
            logger.info(
                "mask NMS, hole filling, sprinkle removal: %s (Hub kernel unavailable: %s)",
                OWN_IMPLEMENTATION,
                reason,
            )
        return _installed
