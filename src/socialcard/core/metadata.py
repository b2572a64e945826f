"""Imports every domain's models so the one MetaData knows all tables (Alembic, tests)."""

from __future__ import annotations

from sqlalchemy import MetaData

from socialcard.core.db import Base
from socialcard.registry import models as registry_models
from socialcard.security import models as security_models
from socialcard.wallet import models as wallet_models

DOMAIN_MODELS = (registry_models, security_models, wallet_models)


def metadata() -> MetaData:
    """The MetaData holding every table."""
    return Base.metadata
