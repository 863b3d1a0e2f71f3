"""A tiny, randomly initialised SAM3 video checkpoint built offline.

Tests and the offline demo need the real transformers SAM3 code path (``from_pretrained``, the
processor, the streaming session) without the gated 3.4 GB ``facebook/sam3`` download. This writes a
few-million-parameter ``Sam3VideoModel`` and its ``Sam3VideoProcessor`` (with a byte-level CLIP
tokenizer built here, no merges) to a directory with ``save_pretrained``.

The detection thresholds are 0 so random weights still produce detections; the masks mean nothing.

Config constraints of the HF port (see DESIGN.md): memory cross-attention hard-codes 64 key/value
channels (``memory_encoder_output_channels == 64``); FPN / tracker hidden sizes must be multiples of
64 above 64; four FPN ``scale_factors``; ``low_res_mask_size == 4 * image_size / patch_size``.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

logger = logging.getLogger(__name__)

PATCH_SIZE = 14
HIDDEN = 128  # FPN, DETR and tracker width: the smallest multiple of 64 above 64.
NUM_QUERIES = 4  # DETR queries per prompt: few objects keep the tiny model fast.
MARKER_FILE = "sam3_stream_tiny.txt"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes), strict=True))


def _byte_level_vocab() -> dict[str, int]:
    """256 byte symbols, their end-of-word forms, then start and end tokens (514 entries)."""
    symbols = [_bytes_to_unicode()[b] for b in range(256)]
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def tiny_config_dict(image_size: int = 224) -> dict[str, Any]:
    """Nested keyword arguments for a tiny ``Sam3VideoConfig`` at ``image_size`` pixels."""
    if image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a multiple of {PATCH_SIZE}, got {image_size}")
    grid = image_size // PATCH_SIZE
    vocab_size = len(_byte_level_vocab())
    vit = {
        "model_type": "sam3_vit_model",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": image_size,
        "patch_size": PATCH_SIZE,
        "window_size": 8,
        "global_attn_indexes": [1],
        "pretrain_image_size": image_size,
    }
    vision = {
        "model_type": "sam3_vision_model",
        "backbone_config": vit,
        "fpn_hidden_size": HIDDEN,
        "backbone_feature_sizes": [[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
        "scale_factors": [4.0, 2.0, 1.0, 0.5],
    }
    text = {
        "model_type": "clip_text_model",
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 32,
        "projection_dim": 64,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }
    small_block = {"hidden_size": HIDDEN, "num_attention_heads": 2, "intermediate_size": HIDDEN}
    detector = {
        "model_type": "sam3",
        "vision_config": vision,
        "text_config": text,
        "geometry_encoder_config": {**small_block, "num_layers": 1},
        "detr_encoder_config": {**small_block, "num_layers": 1},
        "detr_decoder_config": {**small_block, "num_layers": 1, "num_queries": NUM_QUERIES},
        "mask_decoder_config": {"hidden_size": HIDDEN, "num_attention_heads": 2},
    }
    tracker = {
        "model_type": "sam3_tracker_video",
        "vision_config": vision,
        "prompt_encoder_config": {
            "hidden_size": HIDDEN,
            "image_size": image_size,
            "patch_size": PATCH_SIZE,
        },
        "mask_decoder_config": {
            "hidden_size": HIDDEN,
            "mlp_dim": HIDDEN,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 64,
        },
        "memory_attention_hidden_size": HIDDEN,
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": HIDDEN,
        "memory_attention_rope_feat_sizes": [grid, grid],
        "memory_encoder_hidden_size": HIDDEN,
        "memory_encoder_output_channels": 64,
        "mask_downsampler_embed_dim": HIDDEN,
        "memory_fuser_embed_dim": HIDDEN,
        "memory_fuser_intermediate_dim": HIDDEN,
        "image_size": image_size,
    }
    return {
        "detector_config": detector,
        "tracker_config": tracker,
        "low_res_mask_size": 4 * grid,
        # Random weights score around 0.25: thresholds at 0 so detections still happen.
        "score_threshold_detection": 0.0,
        "new_det_thresh": 0.0,
    }


def _build_processor(
    image_size: int,
    tokenizer: Any = None,
    video_mean_std: tuple[float, float] | None = None,
) -> Any:
    """The processor for a model at ``image_size``; the byte-level tokenizer unless one is given.

    ``video_mean_std`` sets the video processor's normalisation (it defaults to ImageNet's stats,
    while the image processor and the streaming path use 0.5/0.5); trained checkpoints pass it.
    """
    from transformers import CLIPTokenizer, Sam3VideoProcessor
    from transformers.models.sam2_video.video_processing_sam2_video import (
        Sam2VideoVideoProcessor,
    )
    from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

    mask_side = 4 * (image_size // PATCH_SIZE)
    if tokenizer is None:
        tokenizer = CLIPTokenizer(vocab=_byte_level_vocab(), merges=[])
    image_processor = Sam3ImageProcessor(
        size={"height": image_size, "width": image_size},
        mask_size={"height": mask_side, "width": mask_side},
    )
    stats: dict[str, Any] = {}
    if video_mean_std is not None:
        mean, std = video_mean_std
        stats = {"image_mean": [mean] * 3, "image_std": [std] * 3}
    video_processor = Sam2VideoVideoProcessor(
        size={"height": image_size, "width": image_size}, **stats
    )
    return Sam3VideoProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        target_size=image_size,
    )


def build_tiny_model(
    path: str | pathlib.Path, image_size: int = 224, seed: int = 0
) -> pathlib.Path:
    """Write a randomly initialised SAM3 video model and its processor to ``path``.

    The result loads with ``Sam3VideoModel.from_pretrained(path)`` and
    ``Sam3VideoProcessor.from_pretrained(path)`` with no network. Same ``seed``, same weights.

    Args:
        path: directory to create (or overwrite).
        image_size: model input side in pixels; a multiple of 14.
        seed: torch seed for the random initialisation.

    Returns:
        The directory, as a ``pathlib.Path``.

    Examples:
        >>> import tempfile
        >>> from tracker import build_tiny_model
        >>> path = build_tiny_model(tempfile.mkdtemp())
        >>> (path / "config.json").exists()
        True
    """
    import torch
    from transformers import Sam3VideoConfig, Sam3VideoModel

    directory = pathlib.Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    config = Sam3VideoConfig(**tiny_config_dict(image_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam3VideoModel(config).eval()
    model.save_pretrained(directory)
    _build_processor(image_size).save_pretrained(directory)
    (directory / MARKER_FILE).write_text(
        "Randomly initialised tiny SAM3 video model written by sam3-stream for tests and the "
        "offline demo. Its masks are meaningless.\n"
    )
    logger.info(
        "tiny SAM3 model (%.1fM parameters) written to %s",
        sum(p.numel() for p in model.parameters()) / 1e6,
        directory,
    )
    return directory


def is_tiny_model(path: str | pathlib.Path) -> bool:
    """True when ``path`` holds a checkpoint written by :func:`build_tiny_model`."""
    return (pathlib.Path(path) / MARKER_FILE).exists()
