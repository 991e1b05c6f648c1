"""Registers the model defined outside the package (external_model.py) before the contract
suite collects the registry, as an installed package's ``latentrec.models`` entry point would.

Tests run with ``--import-mode=importlib`` (tests/ is not on ``sys.path``), so the module is
loaded from its file. Defining the class registers its kind for the rest of the session.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

MODULE = "latentrec_contract_external_model"


def _load_external_model() -> None:
    if MODULE in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(MODULE, Path(__file__).with_name(
        "external_model.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look the module up while building the Config
    spec.loader.exec_module(module)


_load_external_model()
