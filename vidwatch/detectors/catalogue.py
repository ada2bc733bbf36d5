"""The detector registry: each kind of detector declares itself once, in the spirit of
PySceneDetect's registry of detectors, and ``load_models`` builds every model lane from
the declarations (``vidwatch.detectors.registry.DETECTORS``).

A kind declares its name; its provenance roles (``provenance.models.<role>``), each with
the result lists it fills and the setting that turns it off; the settings it reads, as a
small frozen config built from ``Settings`` (the only place a detector sees the settings);
whether that config turns it on; an optional check run once before the heavy imports
(weights on disk: a ConfigError names the setting at fault); how to build one lane's
detectors from its config and the lane's runtime; and what the ``models_loaded`` log line
says of it. Nothing here imports a model library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from vidwatch.config import ConfigError, Settings
from vidwatch.detectors.base import Detector
from vidwatch.detectors.types import ModelInfo

C = TypeVar("C")

MODEL_OFF = "none"
"""DETECT_MODEL / SEGMENT_MODEL value that turns that model off."""

RESERVED_ROLES = ("identities",)
"""Provenance roles that are not a detector's: the face describer's, added per job."""


def model_off(value: str) -> bool:
    return value.strip().lower() == MODEL_OFF


def off_info(role: str, reason: str) -> ModelInfo:
    """The provenance of a model that did not run: name ``none``, no hash, and why."""
    return ModelInfo(role, MODEL_OFF, None, {"enabled": False, "reason": reason})


def raise_config_errors(errors: list[ConfigError]) -> None:
    """Raise the one error, or one ConfigError naming every setting of several, so one
    start says everything there is to set."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigError(
            "; and ".join(str(e) for e in errors),
            settings=tuple(n for e in errors for n in e.settings),
        )


@dataclass(frozen=True)
class Role:
    """One entry of ``provenance.models``: the lists the model in that role fills, and the
    setting (with its value) that turns it off."""

    name: str
    lists: tuple[str, ...]
    off: str
    """How the operator turns it off, e.g. ``DETECT_MODEL=none``."""

    def off_reason(self) -> str:
        lists = " and ".join(self.lists)
        return f"{self.off}: turned off by the operator; the {lists} lists are empty"


@dataclass(frozen=True)
class LaneRuntime:
    """What the detectors of every lane share: the device, the backend, the cache of
    exported models and the OpenVINO config of a lane's threads (``backends``)."""

    device: str
    backend: str = "torch"
    cache_dir: Path | None = None
    openvino_config: dict[str, Any] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class DetectorKind(Generic[C]):
    """A kind of detector, declared once and registered (``Registry.register``)."""

    name: str
    roles: tuple[Role, ...]
    config: Callable[[Settings], C]
    """The settings it reads, as its own small frozen config."""
    enabled: Callable[[C], bool]
    build: Callable[[C, LaneRuntime], list[Detector]]
    """One lane's detectors (called once per lane, after ``check``; the heavy imports go
    here). Each fills only the lists of this kind's roles."""
    check: Callable[[C], C] | None = None
    """Run once, before the heavy imports, where the kind is on: finds what it needs (a
    ConfigError names the setting at fault) and gives the config completed with it."""
    log_fields: Callable[[C], Mapping[str, object]] = lambda _config: {}
    """What the ``models_loaded`` log line says of it, on or off."""

    @property
    def lists(self) -> tuple[str, ...]:
        return tuple(name for role in self.roles for name in role.lists)


class Registry:
    """The kinds of detectors, in the order a lane runs them. A kind's name, its roles and
    its lists are its own: registering one that takes another's is refused."""

    def __init__(self, kinds: Iterable[DetectorKind[Any]] = ()) -> None:
        self._kinds: list[DetectorKind[Any]] = []
        for kind in kinds:
            self.register(kind)

    def register(self, kind: DetectorKind[C]) -> DetectorKind[C]:
        """Add ``kind`` after the kinds already registered; returns it."""
        if not kind.roles:
            raise ValueError(f"detector {kind.name!r} declares no role")
        taken = {
            "name": {k.name for k in self._kinds},
            "role": {r.name for k in self._kinds for r in k.roles} | set(RESERVED_ROLES),
            "list": {name for k in self._kinds for name in k.lists},
        }
        wanted = {
            "name": [kind.name],
            "role": [r.name for r in kind.roles],
            "list": list(kind.lists),
        }
        for what, names in wanted.items():
            for name in names:
                if not name.isidentifier():
                    raise ValueError(f"detector {kind.name!r}: {what} {name!r} is no identifier")
                if name in taken[what] or names.count(name) > 1:
                    raise ValueError(f"detector {kind.name!r}: {what} {name!r} is already taken")
        self._kinds.append(kind)
        return kind

    def copy(self) -> Registry:
        return Registry(self._kinds)

    @property
    def kinds(self) -> tuple[DetectorKind[Any], ...]:
        return tuple(self._kinds)
