"""Privacy stage: fail-closed anonymisation of every frame that is stored or shown."""

import firmware.config  # noqa: F401  (first: the config schema imports this package's config)
from firmware.privacy.anonymiser import Anonymiser
from firmware.privacy.config import PrivacyConfig, StaticMaskConfig

__all__ = ["Anonymiser", "PrivacyConfig", "StaticMaskConfig"]
