"""Store-system inputs: dry-contact inputs (EAS gate, door, fire exit, panic button) and a till
journal (POS lines over serial or TCP), turned into plain records for the rule engine."""

from firmware.inputs.records import ContactChange, InputFault, InputRecord, TillTransaction

__all__ = ["ContactChange", "InputFault", "InputRecord", "TillTransaction"]
