"""Cards of pretrained weights: a ``medxfer pretrain`` folder holds ``weights.safetensors`` (the
backbone's own keys) and ``card.json`` (backbone, source weights, method, images, preprocessing).

``weights: file:DIR`` loads such a folder (:mod:`medxfer.models.weights`) after checking the card's
backbone, and the card's mean and std become the run's preprocessing, with the source weights' own input
size (``model_input_size``: pretraining at a lower resolution to save time does not shrink the fine-tune).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD_FILE = "card.json"
CARD_WEIGHTS = "weights.safetensors"


class CardError(ValueError):
    """A card that is missing, unreadable, or of another backbone; the message names the file."""


def read_weights_card(folder: str | Path) -> dict[str, Any]:
    """``FOLDER/card.json`` as a dict; :class:`CardError` naming the file if it is not a card."""
    path = Path(folder) / CARD_FILE
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CardError(f"{path}: not a readable pretraining card ({exc})") from None
    needed = ("backbone", "input_size", "mean", "std")
    missing = [k for k in needed if not isinstance(card, dict) or k not in card]
    if missing:
        raise CardError(f"{path}: pretraining card without {', '.join(missing)}")
    return card


def folder_preprocess(folder: Path) -> tuple[int, tuple[float, ...], tuple[float, ...]] | None:
    """``(input_size, mean, std)`` of the card in ``folder``; None when ``folder`` has no card."""
    if not (folder / CARD_FILE).is_file():
        return None
    card = read_weights_card(folder)
    size = int(card.get("model_input_size") or card["input_size"])  # cards before model_input_size
    return size, tuple(map(float, card["mean"])), tuple(map(float, card["std"]))


def card_weights_file(backbone: str, folder: Path) -> Path:
    """The weights file of the pretrained ``folder``, after checking its card names ``backbone``."""
    if not (folder / CARD_FILE).is_file():
        raise CardError(
            f"file:{folder}: a folder without {CARD_FILE}; give a weights file, or a folder written by "
            "medxfer pretrain"
        )
    card = read_weights_card(folder)
    if card["backbone"] != backbone:
        raise CardError(
            f"file:{folder}: pretrained weights of backbone {card['backbone']}, but the backbone is "
            f"{backbone}; use --backbone {card['backbone']} or weights of {backbone}"
        )
    return folder / CARD_WEIGHTS
