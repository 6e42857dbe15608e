"""Finding plugins: the packaged entry point, a plugin folder, the enabled list, and broken plugins."""

from __future__ import annotations

import pytest
from pluginfiles import write_plugins

from taggerhub.config import ConfigError, ExperimentSettings, load_settings
from taggerhub.experiments import Experiment
from taggerhub.experiments.g2 import G2
from taggerhub.experiments.registry import load_catalog
from taggerhub.experiments.serving import ExperimentGuard, adapter_class, check_plain


def test_packaged_g2_is_found_through_its_entry_point():
    catalog = load_catalog(ExperimentSettings())
    assert catalog.get("g2") is G2
    assert catalog.sources["g2"] == "entry point g2 = taggerhub.experiments.g2:G2"


def test_plugin_folder_loads_good_plugins_and_names_the_file_of_bad_ones(tmp_path):
    folder = write_plugins(tmp_path / "plugins")
    (folder / "needs_hw.py").write_text("import math\n\nraise RuntimeError('no spectrometer attached')\n")
    catalog = load_catalog(ExperimentSettings(plugin_dir=str(folder)))
    assert catalog.errors[str(folder / "needs_hw.py")] == (
        f"{folder / 'needs_hw.py'}: RuntimeError: no spectrometer attached (line 3)")
    assert catalog.errors[str(folder / "broken.py")].endswith("SyntaxError: expected ':' (line 4)")
    assert issubclass(catalog.get("rates"), Experiment) and "g2" in catalog.classes
    broken = str(folder / "broken.py")
    assert "SyntaxError" in catalog.errors[broken] and broken in catalog.errors[broken]
    assert "defines no subclass" in catalog.errors[str(folder / "helpers.py")]
    with pytest.raises(LookupError, match=r"'broken' is not available: .*broken\.py.*SyntaxError"):
        catalog.get("broken")
    with pytest.raises(LookupError, match="unknown experiment 'nope'; this server offers: g2, rates"):
        catalog.get("nope")
    described = catalog.describe()
    assert described["experiments"]["rates"] == {"source": str(folder / "rates.py"),
                                                 "doc": "Counts per channel over a capture."}
    assert broken in described["errors"]


def test_enabled_list_limits_what_is_served_and_reports_missing_names(tmp_path):
    folder = write_plugins(tmp_path / "plugins")
    catalog = load_catalog(ExperimentSettings(plugin_dir=str(folder), enabled=["rates", "lifetime"]))
    assert sorted(catalog.classes) == ["rates"]
    assert "listed in experiments.enabled but no plugin provides it" in catalog.errors["lifetime"]
    with pytest.raises(LookupError, match="unknown experiment 'g2'"):
        catalog.get("g2")


def test_missing_plugin_folder_is_an_error_not_a_crash(tmp_path):
    catalog = load_catalog(ExperimentSettings(plugin_dir=str(tmp_path / "absent")))
    assert "is not a folder" in catalog.errors[str(tmp_path / "absent")]
    assert "g2" in catalog.classes


def test_served_methods_exclude_base_helpers_and_results_must_be_plain():
    exposed = {name for name in vars(adapter_class(G2)) if not name.startswith("_")}
    assert {"getResult", "start", "startFor", "stop", "isRunning", "waitUntilFinished"} <= exposed
    assert not exposed & {"measurement", "close", "backend", "tagger", "params"}

    class Leaky(Experiment):
        def getThing(self):
            return {"ok": [1, 2.0], "bad": object()}

    with pytest.raises(TypeError, match=r"experiment 'leaky' getThing\(\) returned a builtins.object"):
        ExperimentGuard("leaky", Leaky(None, None)).getThing()
    assert check_plain({"a": (1, "x", None)}, "here") == {"a": (1, "x", None)}


def test_experiments_section_from_toml_and_environment(tmp_path):
    config = tmp_path / "taggerhub.toml"
    config.write_text('[experiments]\nplugin_dir = "/srv/lab-plugins"\nenabled = ["g2"]\n')
    settings = load_settings(config, env={"TAGGERHUB_EXPERIMENTS_ENABLED": "g2, rates"})
    assert settings.experiments.plugin_dir == "/srv/lab-plugins"
    assert settings.experiments.enabled == ["g2", "rates"]
    config.write_text('[experiments]\nplugins = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'plugins'"):
        load_settings(config, env={})
