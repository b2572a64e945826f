"""Imports every domain's models so the one MetaData knows all tables (Alembic, tests)."""

from __future__ import annotations

from sqlalchemy import MetaData

from socialcard.card import models as card_models
from socialcard.core.db import Base
from socialcard.jobs import models as jobs_models
from socialcard.outreach import models as outreach_models
from socialcard.proactive import models as proactive_models
from socialcard.registry import models as registry_models
from socialcard.rules import models as rules_models
from socialcard.security import models as security_models
from socialcard.security.accounts import models as accounts_models
from socialcard.wallet import models as wallet_models
from socialcard.wellbeing import models as wellbeing_models

DOMAIN_MODELS = (
    registry_models,
    security_models,
    accounts_models,
    rules_models,
    wellbeing_models,
    proactive_models,
    outreach_models,
    wallet_models,
    card_models,
    jobs_models,
)


def metadata() -> MetaData:
    """The MetaData holding every table."""
    return Base.metadata
