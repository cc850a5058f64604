"""Privacy stage: fail-closed anonymisation of every frame that is stored or shown."""

from firmware.privacy.anonymiser import Anonymiser
from firmware.privacy.config import PrivacyConfig, StaticMaskConfig

__all__ = ["Anonymiser", "PrivacyConfig", "StaticMaskConfig"]
