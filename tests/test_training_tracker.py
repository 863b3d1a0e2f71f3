"""The tracker-training glue against the port's own path, and the tracker phase's guarantees.

The port (transformers' ``Sam3TrackerVideoModel``) only runs under ``inference_mode``, so the
training path is our hand-chained copy of its private methods (``tracker_glue``). These tests pin
the copy to the original for one object (an upgrade that changes the internals fails here), pin
the batched copy to one-object runs (the two port lines it fixes are the N > 1 ones), and check
that training does what a training loop must: gradients reach the tracker, a seed repeats, a
loss goes down.
"""

from __future__ import annotations

import types

import pytest
import torch
from transformers import Sam3VideoConfig, Sam3VideoModel

from tracker.tiny_model import tiny_config_dict
from tracker.training import SceneConfig, generate_clip
from tracker.training.tracker_glue import Decoded
from tracker.training.tracker_memory import ClipMemory
from tracker.training.tracker_rollout import ClipTensors, clip_loss, clip_tensors, rollout
from tracker.training.train_tracker import (
    TrackerTrainingConfig,
    evaluate_tracker,
    prepare_for_tracker_training,
    tracker_steps_for_minutes,
    train_tracker,
    training_step,
)

SIZE = 112  # smallest size the tiny config supports comfortably; keeps each step ~0.1 s
SCENE = SceneConfig(objects=4, enter_fraction=0.0, leave_fraction=0.0, min_size=20, max_size=32)
TOL = 1e-5


def _model(seed: int = 0) -> Sam3VideoModel:
    """A fresh random tiny video model (its ``__init__`` leaves it in eval mode)."""
    torch.manual_seed(seed)
    return Sam3VideoModel(Sam3VideoConfig(**tiny_config_dict(SIZE)))


def _clip(seed: int = 1, objects: int = 3) -> ClipTensors:
    """A 3-frame clip whose first ``objects`` shapes are all visible on frame 0."""
    clip = generate_clip(seed, frames=3, height=SIZE, width=SIZE, scene=SCENE)
    tensors = clip_tensors(clip, SIZE, max_objects=objects)
    assert tensors is not None and len(tensors.object_ids) == objects
    return tensors


def _only(clip: ClipTensors, i: int) -> ClipTensors:
    """The same clip with only its ``i``-th object."""
    return ClipTensors(clip.pixels, clip.masks[:, i : i + 1], clip.object_ids[i : i + 1])


def _port_rollout(model: Sam3VideoModel, clip: ClipTensors) -> list[types.SimpleNamespace]:
    """One object through the port's private per-frame path, as ``_run_single_frame_inference``
    and ``_batch_encode_memories`` chain it (features from ``get_vision_features_for_tracker``)."""
    tracker = model.tracker_model
    num_frames = clip.pixels.shape[0]
    vision = model.detector_model.get_vision_features(pixel_values=clip.pixels)
    feats, positions = model.get_vision_features_for_tracker(vision)  # [(HW, T, C)]
    memory = ClipMemory()
    outputs = []
    for t in range(num_frames):
        levels = [level[:, t : t + 1] for level in feats]
        high_res = [
            x.permute(1, 2, 0).view(1, x.size(2), *s)
            for x, s in zip(levels[:-1], tracker.backbone_feature_sizes[:-1], strict=True)
        ]
        top = levels[-1]
        if t == 0:
            top_map = top.permute(1, 2, 0).view(
                -1, tracker.hidden_dim, *tracker.backbone_feature_sizes[-1]
            )
            out = tracker._use_mask_as_output(top_map, high_res, clip.masks[0])
        else:
            attended = tracker._prepare_memory_conditioned_features(
                memory, t, 0, False, top, positions[-1][:, t : t + 1], num_frames, False, True
            )
            out = tracker._single_frame_forward(
                image_embeddings=[*high_res, attended], multimask_output=True
            )
        mem_features, mem_pos = tracker._encode_new_memory(
            top, out.high_res_masks, out.object_score_logits, is_mask_from_pts=t == 0
        )
        memory.add(
            t,
            conditioning=t == 0,
            memory={
                "maskmem_features": mem_features,
                "maskmem_pos_enc": mem_pos,
                "object_pointer": out.object_pointer,
            },
        )
        outputs.append(out)
    return outputs


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same values to ``TOL``; the port keeps an extra object axis of 1 on some outputs."""
    return a.numel() == b.numel() and float((a.reshape(-1) - b.reshape(-1)).abs().max()) < TOL


@torch.no_grad()
def test_one_object_glue_equals_the_ports_private_path() -> None:
    model = _model()
    clip = _only(_clip(), 0)
    ours = rollout(model, clip)
    port = _port_rollout(model, clip)
    assert len(ours) == len(port) == 3
    for t, (mine, theirs) in enumerate(zip(ours, port, strict=True)):
        assert _close(mine.high_res_masks, theirs.high_res_masks), f"frame {t} masks"
        assert _close(mine.object_pointer, theirs.object_pointer), f"frame {t} pointer"
        assert _close(mine.object_score_logits, theirs.object_score_logits), f"frame {t} score"
        if t > 0:  # the tracked frames: all three candidates' IoU predictions
            assert _close(mine.iou_scores, theirs.iou_scores), f"frame {t} iou"


@torch.no_grad()
def test_three_objects_batched_equal_three_single_runs() -> None:
    model = _model()
    clip = _clip(objects=3)
    batched = rollout(model, clip)
    singles = [rollout(model, _only(clip, i)) for i in range(3)]
    fields = ("all_masks", "iou_scores", "high_res_masks", "object_pointer", "object_score_logits")
    for t in range(3):
        for i in range(3):
            for name in fields:
                mine = getattr(batched[t], name)[i : i + 1]
                alone = getattr(singles[i][t], name)
                assert _close(mine, alone), f"frame {t} object {i} {name}"


def test_gradients_reach_the_tracker_and_not_the_frozen_backbone() -> None:
    model = _model()
    prepare_for_tracker_training(model)
    clip = _clip()
    loss, parts = clip_loss(rollout(model, clip), clip)
    loss.backward()
    assert set(parts) == {"total", "mask", "iou", "score"}
    tracker = model.tracker_model
    for name in (
        "mask_decoder",
        "memory_attention",
        "memory_encoder",
        "object_pointer_proj",
        "mask_downsample",
        "prompt_encoder",
        "temporal_positional_encoding_projection_layer",
    ):
        grads = [p.grad for p in getattr(tracker, name).parameters()]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), name
    assert tracker.mask_decoder.conv_s0.weight.grad is not None  # features' trainable part
    frozen = list(model.detector_model.parameters()) + list(model.tracker_neck.parameters())
    assert all(p.grad is None for p in frozen)


def test_same_seed_gives_identical_weights_after_two_steps() -> None:
    config = TrackerTrainingConfig(steps=2, frames=3, seed=5, scene=SCENE)
    first, second = _model(), _model()
    train_tracker(first, config, progress=False)
    train_tracker(second, config, progress=False)
    a, b = first.tracker_model.state_dict(), second.tracker_model.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not torch.equal(
        a["object_pointer_proj.layers.0.weight"],
        _model().tracker_model.state_dict()["object_pointer_proj.layers.0.weight"],
    )


def test_loss_goes_down_when_overfitting_one_clip() -> None:
    model = _model()
    params = prepare_for_tracker_training(model)
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    clip = _clip(objects=2)
    losses = [training_step(model, optimizer, params, clip)["total"] for _ in range(20)]
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0], losses


def test_evaluation_compares_with_copying_the_first_mask() -> None:
    model = _model()
    config = TrackerTrainingConfig(frames=3, scene=SCENE)
    result = evaluate_tracker(model, clips=2, config=config)
    assert result.clips == 2 and result.pairs > 0
    assert 0.0 <= result.mean_iou <= 1.0
    assert 0.5 < result.copy_first_iou <= 1.0  # slow shapes: the first mask still overlaps
    assert not model.tracker_model.training
    with pytest.raises(ValueError, match="first_seed"):
        evaluate_tracker(model, clips=1, config=config, first_seed=3)


def test_decoded_carries_object_score_as_n_1_1() -> None:
    """``_encode_new_memory`` mis-broadcasts any other shape (port line 2742)."""
    model = _model()
    outputs: list[Decoded] = rollout(model, _clip(objects=2))
    assert all(out.object_score_logits.shape == (2, 1, 1) for out in outputs)


@pytest.mark.parametrize(
    ("field", "value"), [("frames", 1), ("steps", -1), ("max_objects", 0), ("lr", 0.0)]
)
def test_bad_training_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        TrackerTrainingConfig(**{field: value})


def test_the_tracker_budget_is_a_step_count_that_scales_with_pixels() -> None:
    assert tracker_steps_for_minutes(0, 112) == 0
    at_112 = tracker_steps_for_minutes(10, 112)
    assert at_112 > 0 and tracker_steps_for_minutes(10, 224) == at_112 // 4
