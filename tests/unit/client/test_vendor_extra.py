"""The vendor's client is an optional extra, pinned once, and the docs that use it say how to install it."""

from __future__ import annotations

import importlib.metadata
import tomllib

from packaging.requirements import Requirement

from helpers import REPO


def test_timetaggerrpc_is_the_vendor_client_extra_pinned_once_and_installed_as_pinned() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (pin,) = (Requirement(r) for r in extras["vendor-client"])
    assert pin.name.lower() == "timetaggerrpc"
    assert not any(Requirement(r).name.lower() == "timetaggerrpc" for r in extras["test"])  # one pin, not two
    assert any("vendor-client" in Requirement(r).extras for r in extras["test"] if r.startswith("taggerhub["))
    assert importlib.metadata.version("timetaggerrpc") in pin.specifier  # what the tests run is what is pinned
    assert "TimeTaggerRPC" not in str(importlib.metadata.requires("taggerhub"))  # never a plain dependency


def test_every_page_that_imports_the_vendor_client_names_the_extra() -> None:
    pages = [p for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
             if "from TimeTaggerRPC import client" in p.read_text()]
    assert pages
    for page in pages:
        text = page.read_text()
        assert "[vendor-client]" in text, f"{page.name} imports the vendor client without saying how to install it"
