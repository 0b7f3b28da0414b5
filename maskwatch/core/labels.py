"""Mask classes, their public-data aliases and the violation split."""

from __future__ import annotations

from collections.abc import Mapping

CLASSES: tuple[str, ...] = ("with_mask", "without_mask", "incorrect_mask")
"""Class order of every probability row the classifier returns."""

VIOLATION_CLASSES: frozenset[str] = frozenset({"without_mask", "incorrect_mask"})

ALIASES: dict[str, str] = {
    "with_mask": "with_mask",
    "mask": "with_mask",
    "without_mask": "without_mask",
    "no_mask": "without_mask",
    "incorrect_mask": "incorrect_mask",
    "with_incorrect_mask": "incorrect_mask",
    "mask_weared_incorrect": "incorrect_mask",
    "mask_worn_incorrectly": "incorrect_mask",
}


class UnknownClassError(ValueError):
    """A label that is neither a class name nor a known alias."""


def canonical_class(name: str, extra_aliases: Mapping[str, str] | None = None) -> str:
    """Map a dataset label (any known alias, or one from ``extra_aliases``) to a class name."""
    key = name.strip().lower()
    if extra_aliases and key in extra_aliases:
        key = extra_aliases[key]
    try:
        return ALIASES[key]
    except KeyError:
        known = sorted(set(ALIASES) | set(extra_aliases or {}))
        raise UnknownClassError(f"unknown class name {name!r}; known names: {', '.join(known)}") from None


def is_violation(class_name: str) -> bool:
    """True for ``without_mask`` and ``incorrect_mask``."""
    return class_name in VIOLATION_CLASSES
