"""Config values that import code, and the explicit opt-in a file needs to name one.

Two config values make ppox import a module: an ``env_id`` of the form ``module:Id``
(Gymnasium's ``make`` imports ``module`` so that its registration runs) and an ``obs_encoders``
value ``module:callable`` that is not a registered encoder name (:mod:`ppox.nn.encoders`).
Importing a module runs it — with Python's import path, that includes a file of that name in
the current directory. Typed on the command line or passed in Python, such a value is the
user's own choice. Read from a file (a checkpoint or run directory on ``--resume``,
``ppox eval``, :func:`ppox.load_policy`, ``ppox report``; a ``--config FILE``), it is refused
with an error naming the field, the value and the module, unless the user opts in:
``--trust-imports`` on the command line, ``trust_imports=True`` in Python. The check reads
the config only (building a :class:`~ppox.config.Config` imports nothing) and runs before
anything makes an env or an encoder. docs/trust.md.
"""

from __future__ import annotations

from collections.abc import Collection

from ppox.config import Config
from ppox.errors import ConfigError


def imports_named(cfg: Config) -> list[tuple[str, str, str]]:
    """``(field, value, module)`` for every value of ``cfg`` that would import ``module``."""
    from ppox.nn.encoders import registered_encoders

    out = []
    if ":" in cfg.env.env_id:
        out.append(("env_id", cfg.env.env_id, cfg.env.env_id.partition(":")[0]))
    registered = set(registered_encoders())
    for key, name in cfg.policy.obs_encoders.items():
        if name not in registered and ":" in name:
            out.append((f"obs_encoders[{key!r}]", name, name.partition(":")[0]))
    return out


def check_imports(
    cfg: Config, source: str, trust_imports: bool = False, typed: Collection[str] = ()
) -> None:
    """Raise :class:`ConfigError` when ``cfg``, read from ``source`` (a file), names a module to
    import and the user did not opt in. ``typed``: fields the user gave themselves (command-line
    overrides of a ``--config`` file), which are trusted as they are."""
    if trust_imports:
        return
    for field, value, module in imports_named(cfg):
        if field.partition("[")[0] in typed:
            continue
        raise ConfigError(
            f"{field}={value!r} in {source} would import the module {module!r}, and code named in "
            "a file is never run without your consent; if you trust this file, pass --trust-imports "
            "(Python: trust_imports=True)"
        )
