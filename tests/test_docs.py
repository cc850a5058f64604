"""Docs that are generated from the code stay in step with it."""

from tools.config_doc import main as config_doc


def test_config_reference_is_up_to_date():
    assert config_doc(["--check"]) == 0, (
        "docs/config.md is stale: run .venv/bin/python tools/config_doc.py"
    )
