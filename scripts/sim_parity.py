"""Write docs/simulator-parity.md: which public names and signatures of the vendor library the simulator covers.

Compares the installed ``Swabian.TimeTagger`` (and its ``Experimental``
submodule) with ``taggerhub.sim`` by reflection. Vendor constructors that SWIG
exposes as ``(*args, **kwargs)`` get their parameter list from the
docstring's ``:param`` lines. Run: ``python scripts/sim_parity.py [output]``.
"""

from __future__ import annotations

import enum
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import Swabian.TimeTagger as vendor  # noqa: N813 - "vendor" reads better than a second TT

import taggerhub.sim as sim

# Vendor names the simulator leaves out on purpose: they concern files, licences, firmware,
# network servers, logging or SWIG internals, not a simulated device.
OUT_OF_SCOPE = re.compile(
    r"^(TimeTaggerNetwork|TimeTaggerServer|TimeTaggerHardware|TimeTaggerSource|"
    r"createTimeTaggerNetwork|scanTimeTaggerServers|getTimeTaggerServerInfo|flashLicense|"
    r"extractDeviceLicense|hasTimeTaggerVirtualLicense|setCustomBitFileName|FpgaLinkInterface.*|"
    r"UsageStatisticsStatus.*|.*UsageStatistics.*|setLogger|CustomLogger|LOGGER_.*|addSearchPath|"
    r"checkSystemLibraries|mergeStreamFiles|SwigPyIterator|cvar|typing|weakref|"
    r"SHARED_PTR_DISOWN|LanguageUsed.*|setLanguageInfo|setFrontend|Iterator|"
    r"getCompilationTimestamp|getCompilerVersion|PRI_STR)$"
)
OUT_OF_SCOPE_METHODS = re.compile(
    r"^(thisown|factoryAccess|next_impl|next_impl_cs|startServer|stopServer|isServerRunning|setServerAddress|getServerAddress|"
    r"getConnectedClients|updateBMCFirmware|fetchDeviceLicenseUpdate|getDeviceLicense|"
    r"setTimeTaggerNetworkStreamCompression|enableFpgaLink|disableFpgaLink|xtra_.*StreamInterfaceUDP|"
    r"autoCalibration|getDistributionCount|getDistributionPSecs|xtra_.*Aux.*|xtra_.*Clock.*|xtra_setFanSpeed|"
    r"xtra_.*HighPrio.*|xtra_.*AvgRisingFalling|xtra_measureTriggerLevel)$"
)

# In-scope names the simulator does not have, with why.
NOT_YET: dict[str, str] = {
    "OverflowInjector": "not simulated: the vendor documents only its constructor (tagger, delay, length) and no "
                        "behaviour (docstring empty, no manual page): whether it injects one overflow interval or one "
                        "every delay, and from which time delay counts, is unknown; the engine's overflow intervals "
                        "(Chunk.missed, OverflowBegin/End tags) would carry it once that is known",
    **{f"Experimental.{name}": "not simulated yet: the simulator's own sources play this role (docs/simulator.md); "
                               "these are C++ generator classes (get_intensity, next_impl, on_start ... callbacks) "
                               "whose intensity models the docstrings give no more than in outline "
                               "(Fcs: an exponential g2)"
       for name in ("DlsSignalGenerator", "FcsSignalGenerator", "MarkovProcessGenerator", "PhotonGenerator",
                    "SignalGeneratorBase")},
    "Experimental.PhotonNumber": "not simulated yet: it sorts pulses by decision-boundary lines (slope, x_intercepts) "
                                 "in a plane the docstring does not define",
    "Experimental.TransformCrosstalk": "not simulated yet: the docstring gives delay and tau but not how the delay "
                                       "falls off with the time since the relay event",
}


# Methods of covered classes that are missing, with why.
NOT_YET_METHODS: dict[str, str] = {
    f"Experimental.SimLifetime.{name}": "not simulated yet: the docstring gives only (trigger_channel, emissions or "
                                        "lifetimes, repeat); when a trigger switches value and what repeat does at "
                                        "the end are not documented"
    for name in ("registerEmissionReactor", "registerLifetimeReactor")
}


def params(func) -> list[str] | None:
    """Parameter names (without self), from the signature or, for SWIG overloads, the docstring."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    names = None
    if sig is not None:
        names = [p.name for p in sig.parameters.values() if p.name != "self"]
        if names and all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()
                         if p.name != "self"):
            names = None
    if names is None:
        doc = inspect.getdoc(func) or ""
        found = list(dict.fromkeys(re.findall(r":param (\w+):", doc)))  # overloads repeat their parameters
        names = found or None
    return names


def constructor_params(cls: type) -> list[str] | None:
    names = params(cls.__init__)
    if names is None:
        found = re.findall(r":param (\w+):", inspect.getdoc(cls) or "")
        names = found or None
    return names


def public_methods(cls: type) -> dict[str, object]:
    return {
        a.name: a.object for a in inspect.classify_class_attrs(cls)
        if not a.name.startswith("_") and a.defining_class is not object
    }


def kind_of(obj: object) -> str:
    if inspect.isclass(obj):
        if issubclass(obj, enum.Enum):
            return "enum"
        if issubclass(obj, vendor.IteratorBase):
            return "measurement"
        if issubclass(obj, vendor.TimeTaggerBase):
            return "tagger"
        return "class"
    if callable(obj):
        return "function"
    if isinstance(obj, ModuleType):
        return "module"
    return "constant"


def compare_module(vmod: ModuleType, smod: ModuleType, prefix: str) -> tuple[list[str], list[tuple]]:
    rows, classes = [], []
    for name in sorted(n for n in dir(vmod) if not n.startswith("_")):
        vobj = getattr(vmod, name)
        kind = kind_of(vobj)
        if kind == "module" or name == "Experimental":  # compared as its own section
            continue
        full = f"{prefix}{name}"
        if OUT_OF_SCOPE.match(name):
            rows.append(f"| `{full}` | {kind} | out of scope | |")
            continue
        sobj = getattr(smod, name, None)
        if sobj is None:
            rows.append(f"| `{full}` | {kind} | **missing** | {NOT_YET.get(full, '')} |")
            continue
        note = ""
        if inspect.isclass(vobj) and not issubclass(vobj, enum.Enum):
            vp, sp = constructor_params(vobj), constructor_params(sobj)
            if vp is not None and vp != sp and kind in ("measurement", "class") and name not in (
                    "TimeTaggerBase", "IteratorBase"):
                note = f"constructor differs: vendor ({', '.join(vp)}), simulator ({', '.join(sp or [])})"
            classes.append((full, vobj, sobj))
        elif callable(vobj) and kind == "function":
            vp, sp = params(vobj), params(sobj)
            if vp is not None and sp is not None and vp != sp:
                note = f"parameters differ: vendor ({', '.join(vp)}), simulator ({', '.join(sp)})"
        elif isinstance(vobj, int | float | str) and vobj != sobj:
            note = f"value differs: vendor {vobj!r}, simulator {sobj!r}"
        rows.append(f"| `{full}` | {kind} | {'partial' if note else 'yes'} | {note} |")
    return rows, classes


def method_rows(full: str, vcls: type, scls: type) -> list[str]:
    rows = []
    vm, sm = public_methods(vcls), public_methods(scls)
    for name in sorted(vm):
        if OUT_OF_SCOPE_METHODS.match(name):
            continue
        if name not in sm:
            rows.append(f"| `{full}.{name}` | **missing** | {NOT_YET_METHODS.get(f'{full}.{name}', '')} |")
            continue
        vp, sp = params(vm[name]), params(sm[name])
        if vp is not None and sp is not None and vp != sp and not isinstance(vm[name], property):
            rows.append(f"| `{full}.{name}` | partial | vendor ({', '.join(vp)}), simulator ({', '.join(sp)}) |")
    return rows


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "docs/simulator-parity.md"
    rows, classes = compare_module(vendor, sim, "")
    exp_rows, exp_classes = compare_module(vendor.Experimental, sim.Experimental, "Experimental.")
    rows += exp_rows
    classes += exp_classes
    counted = [r for r in rows if "out of scope" not in r]
    covered = sum(1 for r in counted if "| yes |" in r or "| partial |" in r)
    method_lines = []
    for full, vcls, scls in classes:
        method_lines += method_rows(full, vcls, scls)
    lines = [
        "# Simulator parity with the vendor library",
        "",
        f"Generated by `scripts/sim_parity.py` from `Swabian.TimeTagger` {vendor.getVersion()} "
        f"against `taggerhub.sim` {sim.getVersion()}. Do not edit by hand; rerun the script.",
        "",
        f"Public names in scope: {len(counted)}, present in the simulator: {covered} "
        f"({100 * covered / max(1, len(counted)):.0f} %). Names marked *out of scope* concern files, licences, "
        "firmware, network servers, logging or SWIG internals.",
        "",
        "Vendor constructors that SWIG shows as `(*args, **kwargs)` are compared by the parameter names of "
        "their docstrings; *partial* means the name exists but its parameters differ.",
        "",
        "| Name | Kind | Simulator | Notes |",
        "|---|---|---|---|",
        *rows,
        "",
        "## Methods of covered classes that are missing or differ",
        "",
        "Methods whose parameters match are not listed. Out-of-scope methods (firmware, licences, network "
        "servers, calibration, auxiliary outputs) are left out.",
        "",
        "| Method | Simulator | Notes |",
        "|---|---|---|",
        *(method_lines or ["| (none) | | |"]),
        "",
    ]
    out.write_text("\n".join(lines))
    print(f"wrote {out}: {covered}/{len(counted)} names, {len(method_lines)} method rows to look at")


if __name__ == "__main__":
    main()
