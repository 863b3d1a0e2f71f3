"""The small SAM3 trained on synthetic shapes that ships inside the package.

Without the gated ``facebook/sam3`` weights a fresh machine still needs a model that sees: the demo,
the offline examples and the tests of tracking behaviour use this one. It is the checkpoint
``sam3-stream train-small-model OUT --minutes 15 --image-size 112 --seed 0`` writes (its
``training_card.json`` holds the command's figures): the transformers SAM3 video architecture at
112 px, about 10 MB of fp16 weights, loaded by ``from_pretrained`` like any other.

What it can do is narrow and said so everywhere it is used: it finds and tracks coloured shapes by
their colour word (``"red"``, ``"green"``, ...); shape names (``"circle"``) do not bind yet, and
it knows nothing of real images. Standard library only: the demo asks "is it there?" before
importing torch.
"""

from __future__ import annotations

import json
import pathlib

SHAPES_MODEL_DIR = pathlib.Path(__file__).resolve().parent / "checkpoints" / "sam3-shapes"
"""Where the shipped checkpoint lies, inside the installed package."""

SHAPES_MODEL_CONCEPTS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "white",
    "orange",
)
"""The prompts it answers well: the colour words of ``tracker.training.shapes.COLOURS``."""

CARD_FILE = "training_card.json"
"""The training card ``train-small-model`` writes beside the weights."""

SHAPES_BANNER = (
    "="
    * 78
    + "\nfacebook/sam3 weights are not in the local Hugging Face cache: running the SMALL SAM3\n"
    "bundled with sam3-stream instead. It was TRAINED ON SYNTHETIC SHAPES: it finds and tracks\n"
    "coloured shapes by colour word ('red', 'green', 'magenta', ...). It does not have SAM3's\n"
    "abilities: shape names and real-world concepts mean nothing to it.\n"
    "For real results: accept the licence at https://huggingface.co/facebook/sam3, then\n"
    "`hf auth login` and `hf download facebook/sam3`, and run again.\n" + "=" * 78
)
"""What a run on the bundled checkpoint says first, so nobody mistakes it for SAM3."""


def shapes_model_path() -> pathlib.Path:
    """The shipped checkpoint's directory.

    Raises:
        FileNotFoundError: the package was installed without it (its weights are missing).
    """
    if not (SHAPES_MODEL_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the bundled shapes checkpoint is missing from {SHAPES_MODEL_DIR}: reinstall "
            "sam3-stream, or write one with `sam3-stream train-small-model OUT`"
        )
    return SHAPES_MODEL_DIR


def is_shapes_model(path: str | pathlib.Path) -> bool:
    """True when ``path`` holds a checkpoint written by ``train-small-model`` (its card)."""
    return (pathlib.Path(path) / CARD_FILE).is_file()


def shapes_model_threshold(path: str | pathlib.Path) -> float:
    """The detection threshold ``train-small-model`` calibrated on held-out frames for ``path``.

    A small model's scores sit far below SAM3's (0.17 against the usual 0.5), so outputs are
    filtered at the calibrated value, which the training wrote into the config.

    Raises:
        ValueError: ``path`` has no readable config with ``score_threshold_detection``.
    """
    config_path = pathlib.Path(path) / "config.json"
    try:
        value = json.loads(config_path.read_text())["score_threshold_detection"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(
            f"{config_path}: no calibrated score_threshold_detection ({error})"
        ) from None
    return float(value)
