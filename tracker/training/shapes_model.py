"""The small SAM3 trained on synthetic shapes: its tokenizer, config, construction and saving.

It is the architecture of ``tracker.tiny_model`` (same modules, so ``from_pretrained`` and the
streaming path load it unchanged) with three differences that training needs: a tokenizer whose
word merges make each shape and colour name a single token (the tiny text encoder then learns a
concept per embedding instead of composing characters), real detection thresholds (a trained
model must not keep every query) and 0.5/0.5 normalisation in both processors (what training and
``tracker.preprocess`` use). It carries no tiny-model marker: ``is_tiny_model`` stays False, so the
demo treats it as a trained checkpoint.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

from tracker.shapes_checkpoint import CARD_FILE
from tracker.tiny_model import PATCH_SIZE, _build_processor, _byte_level_vocab, tiny_config_dict
from tracker.training.shapes import COLOURS, SHAPE_KINDS

BOS_ID = 512
EOS_ID = 513
PAD_ID = 513
"""Special token ids of the byte-level vocabulary; merges are appended after them."""

PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
"""Normalisation of both processors and of training: ``(x / 255 - 0.5) / 0.5``."""

SCORE_THRESHOLD = 0.5
NEW_DET_THRESHOLD = 0.7
NMS_THRESHOLD = 0.1
"""Detection thresholds of a trained checkpoint (the port's defaults; random tiny weights use 0)."""

FUSION_LAYERS = 2
"""DETR encoder layers (image attends to text); the tiny random model has 1."""

QUERIES = 16
DECODER_LAYERS = 2
"""DETR queries (on a 4x4 grid of reference boxes at init) and decoder layers. With the tiny
model's 4 queries and 1 layer the matched boxes never converged (GIoU loss stuck at 0.90 in every
run); with 16 and 2 it falls to 0.65 within 500 full-loss steps (best box IoU 0.44, 112 px)."""

TRACK_FROM_DETECTIONS: dict[str, Any] = {
    "recondition_every_nth_frame": 1,
    "recondition_on_trk_masks": False,
    "high_iou_thresh": 0.1,
    "trk_assoc_iou_thresh": 0.2,
}
"""The port's own drift correction, turned up for a small tracker: every frame (not every 16th),
a confident detection overlapping a track by IoU 0.1 replaces the track's mask and memory
("correction mode", ``recondition_on_trk_masks=False``), and a track overlapping a detection by
0.2 (not 0.5) counts as matched. The trained tracker's masks are blobs about 2.4x an object's
area: with the port's defaults a track drifted onto a neighbour after a few frames and, never
matched at IoU 0.5, was never confirmed (bench quality on the colour words, 4 held-out clips at
112 px: MOTA -0.20, recall 0.02 with the defaults; 0.37 and 0.54 with these, 0 ID switches)."""


def _concept_words() -> list[str]:
    """Every word a prompt of the synthetic data uses, each to become one token."""
    return list(dict.fromkeys([*SHAPE_KINDS, *COLOURS]))


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word's symbols: merge the best-ranked adjacent pair until none."""
    while len(pieces) > 1:
        rank, i = min(
            (ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(pieces))
        )
        if rank == len(ranks):
            break
        pieces = [*pieces[:i], pieces[i] + pieces[i + 1], *pieces[i + 2 :]]
    return pieces


def _merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte vocab extended with merges that spell each concept word as one token.

    Each word adds merges joining whatever pieces the merges so far leave it in, so a word
    sharing a pair with an earlier one (``"re"`` of ``"red"`` in ``"green"``) still ends whole;
    merges added later rank lower and never interrupt an earlier word's chain.
    """
    vocab = _byte_level_vocab()
    ranks: dict[tuple[str, str], int] = {}
    for word in _concept_words():
        pieces = _apply_merges([*word[:-1], word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            ranks[(pieces[0], pieces[1])] = len(ranks)
            vocab.setdefault(pieces[0] + pieces[1], len(vocab))
            pieces = _apply_merges(pieces, ranks)
    return vocab, list(ranks)


def shapes_tokenizer() -> Any:
    """CLIP tokenizer: bytes for anything, one token per shape/colour word (``"red circle"`` = 4).

    Examples:
        >>> tok = shapes_tokenizer()
        >>> tok.convert_ids_to_tokens(tok("red circle")["input_ids"])
        ['<|startoftext|>', 'red</w>', 'circle</w>', '<|endoftext|>']
    """
    from transformers import CLIPTokenizer

    vocab, merges = _merges()
    pairs: Any = merges  # the tokenizers backend takes pairs; the stub says list[str]
    return CLIPTokenizer(vocab=vocab, merges=pairs)


def shapes_config_dict(image_size: int = 168) -> dict[str, Any]:
    """``tiny_config_dict`` with the merged vocabulary, explicit special ids, two fusion layers,
    16 queries over two decoder layers, real thresholds and ``TRACK_FROM_DETECTIONS``."""
    config = tiny_config_dict(image_size)
    text = config["detector_config"]["text_config"]
    text["vocab_size"] = len(_merges()[0])
    text["bos_token_id"], text["eos_token_id"], text["pad_token_id"] = BOS_ID, EOS_ID, PAD_ID
    # Two vision<->text fusion layers (plan §7 escalation 3): one lets the model ignore the text.
    config["detector_config"]["detr_encoder_config"]["num_layers"] = FUSION_LAYERS
    decoder = config["detector_config"]["detr_decoder_config"]
    decoder["num_queries"], decoder["num_layers"] = QUERIES, DECODER_LAYERS
    config["score_threshold_detection"] = SCORE_THRESHOLD
    config["new_det_thresh"] = NEW_DET_THRESHOLD
    config["det_nms_thresh"] = NMS_THRESHOLD
    config.update(TRACK_FROM_DETECTIONS)
    return config


def apply_thresholds(config: Any, threshold: float) -> None:
    """Set a ``Sam3VideoConfig``'s detection thresholds to one calibrated ``threshold``.

    The port keeps a detection above ``score_threshold_detection``, starts a track above
    ``new_det_thresh`` and re-seeds a track's memory from a detection above
    ``high_conf_thresh``; a small trained model's scores are compressed below the port's
    defaults (0.5 / 0.7 / 0.8), so all three move to the threshold chosen on held-out frames.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: must be between 0 and 1 (got {threshold})")
    config.score_threshold_detection = threshold
    config.new_det_thresh = threshold
    config.high_conf_thresh = threshold


def shapes_processor(image_size: int) -> Any:
    """``Sam3VideoProcessor`` with the merged tokenizer and 0.5/0.5 stats for images and video."""
    return _build_processor(image_size, shapes_tokenizer(), (PIXEL_MEAN, PIXEL_STD))


def new_shapes_model(image_size: int = 168, seed: int = 0) -> tuple[Any, Any]:
    """A freshly initialised shapes model and its processor; same ``seed``, same weights.

    Raises:
        ValueError: ``image_size`` is not a positive multiple of 14.
    """
    import torch
    from transformers import Sam3VideoConfig, Sam3VideoModel

    if image_size <= 0 or image_size % PATCH_SIZE:
        raise ValueError(
            f"image_size: must be a positive multiple of {PATCH_SIZE} (got {image_size})"
        )
    config = Sam3VideoConfig(**shapes_config_dict(image_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(config)
    return model.eval(), shapes_processor(image_size)


def save_shapes_model(
    model: Any, processor: Any, out_dir: str | pathlib.Path, card: dict[str, Any]
) -> pathlib.Path:
    """Write ``model`` (fp16 safetensors that reload float32), ``processor`` and a training card.

    fp16 storage halves the file; ``config.json``'s ``dtype`` is set to ``float32`` so
    ``from_pretrained`` upcasts on load (transformers 5 would otherwise load fp16 weights as fp16).
    """
    import torch

    directory = pathlib.Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16)
    try:
        model.save_pretrained(directory)
    finally:
        model.to(torch.float32)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    processor.save_pretrained(directory)
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return directory
