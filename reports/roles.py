"""Model roles: which row of the paper's tables a registry model name plays.

A default mapping reads the role from the name (first matching pattern wins, so the specific variants come
before plain "minigpt4" / "blip2"); a YAML file (`--roles FILE`, `name: role`) overrides it per name. A role
is written as the paper writes it ("+ 3 layers") or as its key ("three_layers"); `null` or "none" leaves a
model without a role (it still appears in every table that has its results, marked "no paper row").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

# The paper's rows, in the order the report lists them, with the keys the task specs' `paper.numbers` use.
ROLE_KEYS: dict[str, str] = {
    "MiniGPT-4": "minigpt4",
    "BLIP-2": "blip2",
    "No Q-Former": "no_qformer",
    "+ 3 layers": "three_layers",
    "+ finetune Q-Former": "finetune_qformer",
    "LocNa": "locna",
    "BLIP-2 FT": "blip2_ft",
    "Finetune Vicuna": "finetune_vicuna",
    "stage-1 only": "stage1",
}
ROLES = tuple(ROLE_KEYS)

DEFAULT_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"no-?_?q-?former", "No Q-Former"),
    (r"3-?_?layers?|three-?_?layers?", "+ 3 layers"),
    (r"ft-?_?q-?former|finetune-?_?q-?former|q-?former-?_?ft", "+ finetune Q-Former"),
    (r"locna", "LocNa"),
    (r"blip-?2.*[-_]ft(?:[-_.]|$)|blip-?2-?ft", "BLIP-2 FT"),
    (r"ft-?_?vicuna|finetune-?_?vicuna|lora", "Finetune Vicuna"),
    (r"stage-?_?1", "stage-1 only"),
    (r"mini-?gpt-?4", "MiniGPT-4"),
    (r"blip-?2", "BLIP-2"),
)


class RolesError(ValueError):
    """A roles file that cannot be used; the message names the file and the entry."""


def default_role(model: str) -> str | None:
    name = model.lower()
    for pattern, role in DEFAULT_PATTERNS:
        if re.search(pattern, name):
            return role
    return None


def normalise_role(value: object, *, source: str = "roles") -> str | None:
    """A role from its paper spelling or its key (case-insensitive); None for null / "none" / "-"."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("", "none", "-", "null"):
        return None
    for role, key in ROLE_KEYS.items():
        if text.lower() in (role.lower(), key):
            return role
    raise RolesError(f"{source}: unknown role {text!r}; roles: {', '.join(ROLES)} (or their keys: "
                     f"{', '.join(ROLE_KEYS.values())})")


def load_roles(path: str | Path) -> dict[str, str | None]:
    """Read a roles file: a YAML mapping of model name -> role."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RolesError(f"{path}: cannot read roles file: {exc}") from exc
    if not isinstance(data, dict):
        raise RolesError(f"{path}: a roles file maps model names to roles, got {type(data).__name__}")
    return {str(name): normalise_role(role, source=f"{path}: {name}") for name, role in data.items()}


def resolve_roles(models: Iterable[str], overrides: Mapping[str, str | None] | str | Path | None = None
                  ) -> dict[str, str | None]:
    """Each model's role: the override where one is given, else the default pattern's."""
    if isinstance(overrides, (str, Path)):
        overrides = load_roles(overrides)
    given = {name: normalise_role(role, source=f"roles: {name}") for name, role in (overrides or {}).items()}
    return {m: given[m] if m in given else default_role(m) for m in sorted(set(models))}
