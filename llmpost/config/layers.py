"""A stage's config sources in precedence order: the one layering behind `llmpost <stage>` and `llmpost run`.

Lowest to highest:

    stage defaults       the stage's `Config` model
    recipe `defaults:`   the recipe's `defaults:` that the stage has keys for (and its `out`, RECIPE-ID)
    recipe stage block   the stage's block in the recipe (less `uses:` and `launch:`)
    --config FILE        `llmpost <stage>`: the file; `llmpost run`: its `defaults:`, then its block for the stage
    flags                `llmpost <stage>`'s options (--lr, --lora, ...); `llmpost run` has none
    --set KEY=VALUE      `llmpost <stage>`: KEY; `llmpost run`: defaults.KEY, then stages.ID.KEY

`stage_layers()` puts the sources in this order; `resolve()` merges and validates them.
Both commands call it, so they cannot disagree on what beats what.
"""

from __future__ import annotations

from typing import Any

Layer = dict[str, Any]


def stage_layers(*, recipe_defaults: Layer | None = None, recipe_stage: Layer | None = None,
                 config_file: Layer | None = None, flags: dict[str, Any] | None = None,
                 sets: Layer | None = None) -> list[Layer]:
    """The sources a stage's config comes from, lowest precedence first, as layers for `resolve()`.

    `flags` are dotted keys (`lora.enabled`) with None for a flag not given; every other
    source is a nested mapping of config keys.
    """
    return [recipe_defaults or {}, recipe_stage or {}, config_file or {}, flags_to_layer(flags or {}), sets or {}]


def flags_to_layer(flags: dict[str, Any]) -> Layer:
    """Explicit flags (dotted keys, None = not given) as a nested config layer."""
    layer: Layer = {}
    for key, value in flags.items():
        if value is None:
            continue
        node = layer
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return layer
