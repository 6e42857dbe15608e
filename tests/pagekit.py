"""What the web tests share: the expected rates, the lab they run in, blank-screenshot checks."""

from __future__ import annotations

import io
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from taggerhub.testing import ServerContext

CHROMIUM = os.environ.get("TAGGERHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USERS = {"ada": "admin", "otto": "operator", "olga": "operator", "oscar": "observer"}
DOCS = Path(__file__).resolve().parents[1] / "docs"


def expected_rates() -> dict[int, float]:
    """Each input's rate from the default lab file (docs/simulator.md), summed over its sources."""
    lab = tomllib.loads((resources.files("taggerhub.sim") / "default-lab.toml").read_text())
    rates: dict[int, float] = {}
    for source in lab["device"][0]["source"]:
        kind = source["kind"]
        if kind == "photon_pairs":
            for side in ("a", "b"):
                ch = source[f"channel_{side}"]
                rates[ch] = rates.get(ch, 0.0) + source["pair_rate_hz"] * source[f"efficiency_{side}"]
        elif kind == "pulsed_laser":
            rates[source["sync_channel"]] = rates.get(source["sync_channel"], 0.0) + source["repetition_hz"]
            for ch in source["photon_channels"]:
                rates[ch] = rates.get(ch, 0.0) + source["detection_rate_hz"] / len(source["photon_channels"])
        elif kind == "poisson":
            rates[source["channel"]] = rates.get(source["channel"], 0.0) + source["rate_hz"]
        elif kind == "periodic":
            rates[source["channel"]] = rates.get(source["channel"], 0.0) + source["frequency_hz"]
    return rates


@dataclass
class Lab:
    """The served simulator (auth on), its users' tokens, the page's URL and a browser."""

    server: ServerContext
    tokens: dict[str, str]
    url: str
    browser: Any
    audit_file: Path
    artifacts: Path
    pages: list[Any] = field(default_factory=list)

    def page(self) -> Any:
        page = self.browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(15_000)
        self.pages.append(page)
        return page

    def login(self, user: str) -> Any:
        """A new browser page logged in as ``user`` (by typing the token), once the device's channels are shown."""
        page = self.page()
        page.goto(self.url)
        page.fill("#token", self.tokens[user])
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#rate-1")
        return page

    def audit(self) -> list[dict[str, Any]]:
        import json

        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]


def screenshot(page: Any, selector: str, path: Path) -> Path:
    """Save the element's screenshot as an artifact and fail if it is blank (one colour, or nearly)."""
    from PIL import Image, ImageStat

    path.parent.mkdir(parents=True, exist_ok=True)
    data = page.locator(selector).screenshot(path=str(path))
    image = Image.open(io.BytesIO(data)).convert("L")
    variance = ImageStat.Stat(image).var[0]
    colours = len(image.getcolors(maxcolors=1 << 16) or range(1 << 16))
    assert variance > 100 and colours > 8, f"{path.name} looks blank: variance {variance:.1f}, {colours} colours"
    return path


