"""HTTP serving (``pip install latentrec[serve]``)."""

from latentrec.serving.app import ServiceLimits, create_app

__all__ = ["ServiceLimits", "create_app"]
