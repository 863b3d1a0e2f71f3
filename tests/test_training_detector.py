"""The shapes model's tokenizer/config/saving, the detector set loss, and the training loop.

Everything runs at tiny image sizes and a handful of steps: these check behaviour (matching,
determinism, loadability), not that training converges (the go/no-go run measures that).
"""

from __future__ import annotations

import json
import pathlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipeline.cli.main import main
from tracker import Sam3VideoTracker, is_tiny_model
from tracker.training import generate_clip
from tracker.training.dense_labels import (
    COLOUR_CLASSES,
    KIND_CLASSES,
    LABEL_STRIDE,
    DenseLabelHeads,
    dense_label_loss,
    dense_targets,
)
from tracker.training.detector_eval import choose_threshold, evaluate_detector
from tracker.training.detector_frames import make_frame
from tracker.training.losses import SEMANTIC_ONLY, Target, detector_loss, match
from tracker.training.samples import detector_samples
from tracker.training.shapes import COLOURS, SHAPE_KINDS
from tracker.training.shapes_model import (
    BOS_ID,
    CARD_FILE,
    DECODER_LAYERS,
    EOS_ID,
    QUERIES,
    apply_thresholds,
    new_shapes_model,
    save_shapes_model,
    shapes_config_dict,
    shapes_tokenizer,
)
from tracker.training.train_detector import (
    _warm_up_backbone,
    init_for_training,
    pick_prompts,
    train_detector,
)

# --- tokenizer, config, saving ------------------------------------------------------------------


def test_every_shape_and_colour_word_is_one_token_and_other_words_still_encode() -> None:
    tok = shapes_tokenizer()
    for word in (*SHAPE_KINDS, *COLOURS):
        ids = tok(word)["input_ids"]
        assert ids[0] == BOS_ID and ids[-1] == EOS_ID and len(ids) == 3, (word, ids)
    assert tok.convert_ids_to_tokens(tok("Red Circle")["input_ids"])[1:3] == [
        "red</w>",
        "circle</w>",
    ]
    assert len(tok("dog")["input_ids"]) == 5  # unknown words fall back to bytes
    assert shapes_config_dict(56)["detector_config"]["text_config"]["vocab_size"] == len(
        tok.get_vocab()
    )


def test_config_has_real_thresholds_and_bad_image_size_is_refused() -> None:
    config = shapes_config_dict(112)
    assert config["score_threshold_detection"] > 0 and config["new_det_thresh"] > 0
    decoder = config["detector_config"]["detr_decoder_config"]
    assert (decoder["num_queries"], decoder["num_layers"]) == (QUERIES, DECODER_LAYERS)
    with pytest.raises(ValueError, match="image_size"):
        new_shapes_model(100)


def test_saved_model_reloads_float32_with_its_processor_and_no_tiny_marker(
    tmp_path: pathlib.Path,
) -> None:
    from transformers import Sam3VideoModel, Sam3VideoProcessor

    model, processor = new_shapes_model(56, seed=1)
    path = save_shapes_model(model, processor, tmp_path / "ck", {"steps": 0})
    size = (path / "model.safetensors").stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    assert size < 2.2 * n_params  # fp16 storage
    loaded = Sam3VideoModel.from_pretrained(path)
    weights = dict(loaded.named_parameters())
    for name, param in model.named_parameters():
        assert weights[name].dtype == torch.float32
        assert torch.equal(weights[name], param.detach().half().float()), name
    reread = Sam3VideoProcessor.from_pretrained(path)
    assert reread.tokenizer("star")["input_ids"] == processor.tokenizer("star")["input_ids"]
    assert list(reread.video_processor.image_mean) == [0.5, 0.5, 0.5]
    assert list(reread.video_processor.image_std) == [0.5, 0.5, 0.5]
    assert json.loads((path / CARD_FILE).read_text()) == {"steps": 0}
    assert not is_tiny_model(path)


# --- loss ---------------------------------------------------------------------------------------


def _outputs(logits: torch.Tensor, boxes: torch.Tensor, masks: torch.Tensor) -> SimpleNamespace:
    """A detector output with (B, Q) logits, (B, Q, 4) boxes and (B, Q, h, w) mask logits."""
    presence = torch.zeros(logits.shape[0], 1, requires_grad=True)
    semantic = torch.zeros(logits.shape[0], 1, *masks.shape[-2:], requires_grad=True)
    return SimpleNamespace(
        pred_logits=logits,
        pred_boxes=boxes,
        pred_masks=masks,
        presence_logits=presence,
        semantic_seg=semantic,
    )


def _two_instances() -> Target:
    masks = torch.zeros(2, 16, 16)
    masks[0, 2:6, 2:6] = 1
    masks[1, 8:14, 9:15] = 1
    boxes = torch.tensor([[2, 2, 6, 6], [9, 8, 15, 14]], dtype=torch.float32) / 16
    return {"boxes": boxes, "masks": masks}


def test_perfect_predictions_give_near_zero_box_and_mask_losses() -> None:
    target = _two_instances()
    boxes = torch.cat([target["boxes"], torch.tensor([[0.0, 0.0, 0.1, 0.1]] * 2)])[None]
    masks = torch.full((1, 4, 16, 16), -30.0)
    masks[0, :2] = target["masks"] * 60 - 30
    logits = torch.tensor([[12.0, 12.0, -12.0, -12.0]])
    _, parts = detector_loss(_outputs(logits, boxes, masks), [target])
    assert parts["l1"] < 1e-6 and parts["giou"] < 1e-6
    assert parts["mask"] < 0.02
    assert parts["cls"] < 1e-4


def test_loss_is_invariant_to_the_order_of_queries_and_of_targets() -> None:
    torch.manual_seed(0)
    target = _two_instances()
    logits = torch.randn(1, 4)
    boxes = torch.rand(1, 4, 2).sort(-1).values.repeat_interleave(2, -1)[..., [0, 2, 1, 3]]
    masks = torch.randn(1, 4, 16, 16)
    total, _ = detector_loss(_outputs(logits, boxes, masks), [target])
    order = torch.tensor([2, 0, 3, 1])
    swapped: Target = {"boxes": target["boxes"].flip(0), "masks": target["masks"].flip(0)}
    again, _ = detector_loss(
        _outputs(logits[:, order], boxes[:, order], masks[:, order]), [swapped]
    )
    assert torch.allclose(total, again, atol=1e-5)
    queries, chosen = match(logits[0], boxes[0], target["boxes"])
    assert len(queries) == len(chosen) == 2 and len(set(queries.tolist())) == 2


def test_a_negative_prompt_pushes_every_score_and_the_presence_down() -> None:
    logits = torch.zeros(1, 4, requires_grad=True)
    out = _outputs(logits, torch.rand(1, 4, 4).sort(-1).values, torch.zeros(1, 4, 16, 16))
    empty: Target = {"boxes": torch.zeros(0, 4), "masks": torch.zeros(0, 16, 16)}
    total, parts = detector_loss(out, [empty])
    total.backward()
    assert logits.grad is not None and (logits.grad > 0).all()  # descent lowers them
    assert out.presence_logits.grad is not None and (out.presence_logits.grad > 0).all()
    assert parts["l1"] == parts["mask"] == 0.0
    with pytest.raises(ValueError, match="targets"):
        detector_loss(out, [])


def test_the_binding_phase_trains_the_semantic_map_alone() -> None:
    logits = torch.zeros(1, 4, requires_grad=True)
    out = _outputs(logits, torch.rand(1, 4, 4).sort(-1).values, torch.zeros(1, 4, 16, 16))
    total, parts = detector_loss(out, [_two_instances()], SEMANTIC_ONLY)
    total.backward()
    assert torch.isclose(total, torch.tensor(parts["semantic"]))
    assert logits.grad is not None and not logits.grad.any()
    assert out.presence_logits.grad is not None and not out.presence_logits.grad.any()
    assert out.semantic_seg.grad is not None and out.semantic_seg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="semantic_first_fraction"):
        train_detector(steps=1, image_size=56, progress=False, semantic_first_fraction=1.5)


# --- dense labels (backbone warm-up) -------------------------------------------------------------


def test_dense_targets_name_each_objects_kind_and_colour_where_it_is_drawn() -> None:
    truth = generate_clip(7, frames=1, height=112, width=112).truths[0]
    kinds, colours = dense_targets(truth)
    assert kinds.shape == colours.shape == (112 // LABEL_STRIDE, 112 // LABEL_STRIDE)
    assert (kinds > 0).any() and ((kinds > 0) == (colours > 0)).all()
    half = LABEL_STRIDE // 2
    on_top: dict[tuple[int, int], tuple[str, str]] = {}
    for obj in truth.objects:  # later objects are drawn over earlier ones
        for y, x in zip(*np.nonzero(obj.mask[half::LABEL_STRIDE, half::LABEL_STRIDE]), strict=True):
            on_top[(int(y), int(x))] = (obj.kind, obj.colour)
    assert on_top and len(on_top) == int((kinds > 0).sum())
    for (y, x), (kind, colour) in on_top.items():
        assert KIND_CLASSES[kinds[y, x]] == kind and COLOUR_CLASSES[colours[y, x]] == colour


def test_dense_loss_scores_kind_accuracy_and_refuses_a_wrong_batch() -> None:
    kinds = np.zeros((4, 4), np.int64)
    kinds[1:3, 1:3] = KIND_CLASSES.index("square")
    colours = np.where(kinds > 0, COLOUR_CLASSES.index("red"), 0)
    heads = DenseLabelHeads(8)
    with torch.no_grad():  # a head that reads channel 0 as "square", channel 1 as "red"
        for conv, right in (
            (heads.kind, KIND_CLASSES.index("square")),
            (heads.colour, COLOUR_CLASSES.index("red")),
        ):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[0, 1] = 10.0  # background where channel 1 is high
            conv.weight[right, 0] = 10.0
    features = torch.zeros(1, 8, 4, 4)
    features[0, 0] = torch.from_numpy(kinds > 0).float()
    features[0, 1] = torch.from_numpy(kinds == 0).float()
    fpn = (features, features, features)  # the encoder's level is the one before the last
    loss, accuracy = dense_label_loss(heads, fpn, [(kinds, colours)])
    assert accuracy == 1.0 and float(loss.detach()) < 0.01
    _, wrong = dense_label_loss(heads, (features, -features, features), [(kinds, colours)])
    assert wrong == 0.0
    with pytest.raises(ValueError, match="targets"):
        dense_label_loss(heads, fpn, [])


def test_the_backbone_warm_up_trains_the_vision_encoder_and_nothing_else() -> None:
    model, _ = new_shapes_model(56, 0)
    detector = model.detector_model
    init_for_training(detector)
    detector.train()
    before = {k: v.clone() for k, v in detector.state_dict().items()}
    heads = DenseLabelHeads(detector.config.vision_config.fpn_hidden_size)
    accuracy = _warm_up_backbone(
        detector, heads, 2, 56, np.random.default_rng(0), progress=False, log=None
    )
    assert 0.0 <= accuracy <= 1.0
    after = detector.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("vision_encoder.backbone.") for k in changed)
    assert changed and all(k.startswith("vision_encoder.") for k in changed), sorted(changed)
    with pytest.raises(ValueError, match="backbone_warmup_ratio"):
        train_detector(steps=1, image_size=56, progress=False, backbone_warmup_ratio=-1)


# --- training -----------------------------------------------------------------------------------


def test_prompts_start_with_a_positive_and_mix_in_negatives() -> None:
    rng = np.random.default_rng(0)
    frame = make_frame(5, 56, coloured=True, rng=rng)
    assert frame.image.shape == (56, 56, 3)
    chosen = pick_prompts(frame.samples, 4, rng)
    assert len(chosen) == 4 and chosen[0].present
    clip = generate_clip(5, frames=1, height=56, width=56)
    assert clip.images[0].shape == frame.image.shape


def test_colour_words_name_every_object_of_that_colour_and_absent_colours_are_negatives() -> None:
    truth = generate_clip(11, frames=1, height=112, width=112).truths[0]
    samples = {s.text: s for s in detector_samples(truth, colour_words=True)}
    present = {obj.colour for obj in truth.objects}
    assert set(COLOURS) <= set(samples) and present
    for colour in COLOURS:
        ids = {obj.object_id for obj in truth.objects if obj.colour == colour}
        assert set(samples[colour].object_ids) == ids and samples[colour].present == bool(ids)
    frame = make_frame(11, 112, coloured=True, rng=np.random.default_rng(0), concepts="colours")
    assert sorted(s.text for s in frame.samples) == sorted(COLOURS)
    with pytest.raises(ValueError, match="concepts"):
        train_detector(steps=1, image_size=56, progress=False, concepts="animals")


def test_evaluation_reports_shape_and_colour_prompts_apart() -> None:
    model, processor = new_shapes_model(56, 0)
    detector = model.detector_model
    both = evaluate_detector(detector, processor.tokenizer, 56, frames=2, concepts="all")
    keys = {"presence_accuracy", "recall_at_0_5", "best_mask_iou", "top_score_hit"}
    assert keys <= set(both) and {f"colour_{k}" for k in keys} <= set(both)
    assert all(0.0 <= both[k] <= 1.0 for k in keys) and both["best_mask_iou"] > 0.0
    shapes = evaluate_detector(detector, processor.tokenizer, 56, frames=2, concepts="shapes")
    assert keys <= set(shapes) and not any(k.startswith("colour_") for k in shapes)
    assert shapes["presence_accuracy"] == both["presence_accuracy"]  # same shape prompts


def test_the_threshold_separates_present_from_absent_concepts_and_lands_in_the_config() -> None:
    # Scripted scores: right queries at 0.15-0.19, one wrong top query, absent concepts <= 0.1.
    positives = [(0.15, True), (0.17, True), (0.19, True), (0.3, False)]
    negatives = [0.02, 0.03, 0.1]
    chosen = choose_threshold(positives, negatives)
    assert 0.1 <= chosen.threshold < 0.15
    assert (chosen.positives_found, chosen.negatives_clean) == (0.75, 1.0)
    assert choose_threshold([], []).threshold > 0.9  # nothing to separate: keep nothing
    model, _ = new_shapes_model(56, 0)
    apply_thresholds(model.config, chosen.threshold)
    config = model.config
    assert config.score_threshold_detection == config.new_det_thresh == chosen.threshold
    assert config.high_conf_thresh == chosen.threshold
    with pytest.raises(ValueError, match="threshold"):
        apply_thresholds(model.config, 1.5)


def test_same_seed_gives_the_same_weights_and_another_seed_does_not() -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        model, _, report = train_detector(
            steps=2, seed=seed, image_size=56, threads=1, progress=False, eval_images=2
        )
        assert report.steps == 2 and len(report.history) == 1
        assert report.backbone_kind_accuracy is not None
        assert set(report.evaluation) >= {"presence_accuracy", "recall_at_0_5", "negatives_clean"}
        return {k: v.clone() for k, v in model.detector_model.state_dict().items()}

    first, second, other = weights(3), weights(3), weights(4)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_cli_bad_flags_exit_2_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for flags, field in (
        (["--minutes", "0"], "--minutes"),
        (["--image-size", "100"], "--image-size"),
        (["--seed", "-1"], "--seed"),
    ):
        assert main(["train-small-model", "out", *flags]) == 2
        err = capsys.readouterr().err
        assert field in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_writes_a_checkpoint_the_streaming_tracker_loads_and_runs(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shapes"
    args = ["train-small-model", str(out), "--minutes", "0.01", "--image-size", "112"]
    assert main([*args, "--no-progress", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "held-out shape prompts" in printed and "held-out colour prompts" in printed
    assert "detection threshold" in printed and "held-out tracking" in printed
    card = json.loads((out / CARD_FILE).read_text())
    assert card["phases"] == ["detector", "tracker"] and card["steps"] >= 1
    assert card["concepts"] == "all" and 0 < card["calibration"]["threshold"] < 1
    saved = json.loads((out / "config.json").read_text())
    assert saved["score_threshold_detection"] == card["calibration"]["threshold"]
    tracker = Sam3VideoTracker.from_pretrained(str(out), device="cpu", max_num_objects=2)
    session = tracker.new_session(("circle",))
    frame = generate_clip(10_001, frames=1, height=120, width=160).images[0][..., ::-1]
    result = tracker.step(session, np.ascontiguousarray(frame), 0)
    assert result is not None
