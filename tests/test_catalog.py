"""Hardware and memory catalog: shipped files load with a source for every figure, --kv-memory swaps the
KV tier, and every kind of bad file gives a PlannerInputError naming the file and the field (exit 2).

Expected tier figures are the products of the per-device figures in instances/memory/*.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from planner.core.errors import PlannerInputError
from planner.hardware.catalog import (
    HARDWARE_DIR,
    MEMORY_DIR,
    hardware_names,
    load_hardware,
    load_memory_tech,
    memory_tech_names,
)


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", memory_tech_names())
def test_shipped_memory_loads_with_sources(name: str):
    tech = load_memory_tech(name)
    assert tech.name == name  # the file name is the technology's name, as hardware files refer to it
    assert tech.capacity_per_device > 0 and tech.bandwidth_per_device > 0 and tech.energy > 0
    for figure in ("capacity_per_device", "bandwidth_per_device", "energy", "devices_per_reticle_die"):
        assert tech.sources[figure].strip(), figure


def test_shipped_catalog_is_complete():
    assert {"hbm3", "hbm3e", "hbm4", "sram", "novel-kv-dram", "lpddr5x", "gddr7", "ddr5"} <= set(
        memory_tech_names()
    )
    assert {"h100-sxm", "h200", "b200", "sram-pipeline"} <= set(hardware_names())


def _source_for(sources: dict[str, str], figure: str) -> str:
    """The source of `figure` ("chip.static_power"): its own key or that of an enclosing section ("chip")."""
    parts = figure.split(".")
    for i in range(len(parts), 0, -1):
        text = sources.get(".".join(parts[:i]), "")
        if text.strip():
            return text
    return ""


@pytest.mark.parametrize("name", hardware_names())
def test_shipped_hardware_loads_with_sources(name: str):
    hw = load_hardware(name)
    raw = _yaml(HARDWARE_DIR / f"{name}.yaml")
    figures = [
        "chip.peak_flops",
        "chip.energy_per_flop",
        "chip.static_power",
        "chip.data_path_energy",
        "memory",
        "inter_group_link",
        "achievable",
    ]
    if raw.get("chips_per_group", 1) > 1:
        figures.append("intra_group_link")
    missing = [f for f in figures if not _source_for(raw.get("sources", {}), f)]
    assert not missing, f"{name}: no source for {missing}"
    assert hw.peak_flops_per_s["bf16"] > 0 and hw.tiers and hw.static_power_w > 0
    assert 0 < hw.achievable.weight_bandwidth <= 1 and 0 < hw.achievable.compute <= 1


def test_h100_datasheet_figures():
    """NVIDIA H100 SXM datasheet: 80 GB HBM3 at 3.35 TB/s, 989 TFLOP/s bf16 dense, 1979 fp8; NVLink4 900 GB/s
    bidirectional = 450 GB/s per direction; groups of 8 (HGX)."""
    hw = load_hardware("h100-sxm")
    (tier,) = hw.tiers
    assert (tier.name, tier.capacity_bytes, tier.bw_bytes_per_s) == ("hbm3", 80e9, 3.35e12)
    assert hw.peak_flops_per_s == {"bf16": 989e12, "fp8": 1979e12}
    assert hw.flops_per_s("fp4") == 1979e12  # no fp4 units: the next wider format
    assert hw.chips_per_group == 8 and hw.intra_link.bw_bytes_per_s == 450e9
    # a tier costs the device's own energy plus the chip's data path, both from the files
    hbm3 = load_memory_tech("hbm3")
    chip = _yaml(HARDWARE_DIR / "h100-sxm.yaml")["chip"]
    assert tier.device_pj_per_bit == hbm3.energy
    assert tier.pj_per_bit == pytest.approx(hbm3.energy + float(str(chip["data_path_energy"]).split()[0]))


# ------------------------------------------------------------------------------------ --kv-memory


def test_kv_memory_swaps_the_tier():
    """sram-pipeline: tier 0 SRAM (1 device of 256 MB, 80 TB/s per reticle die), tier 1 the KV tier.
    Default hbm3e: 4 stacks x 36 GB = 144 GB, 4 x 1.2 TB/s = 4.8 TB/s. novel-kv-dram: 1 x 16 GB, 28 TB/s,
    1.2 pJ/bit + the chip's 1.0 pJ/bit data path."""
    default = load_hardware("sram-pipeline")
    assert [t.name for t in default.tiers] == ["sram", "hbm3e"]
    assert default.tiers[0].capacity_bytes == 256e6 and default.tiers[0].bw_bytes_per_s == 80e12
    assert default.tiers[1].capacity_bytes == 4 * 36e9 and default.tiers[1].bw_bytes_per_s == 4 * 1.2e12
    assert default.tiers[0].on_chip and not default.tiers[1].on_chip
    novel = load_hardware("sram-pipeline", kv_memory="novel-kv-dram")
    assert [t.name for t in novel.tiers] == ["sram", "novel-kv-dram"]
    kv = novel.tier("novel-kv-dram")
    assert (kv.capacity_bytes, kv.bw_bytes_per_s) == (16e9, 28e12)
    assert kv.pj_per_bit == pytest.approx(1.2 + 1.0)
    assert novel.kv_memory == "novel-kv-dram"


def test_kv_memory_sram_drops_the_off_chip_tier():
    hw = load_hardware("sram-pipeline", kv_memory="sram")
    assert [t.name for t in hw.tiers] == ["sram"]


def test_kv_memory_by_path_with_another_name(tmp_path: Path):
    """A technology file given by path is used even when its `name` is not a shipped file's name."""
    data = _yaml(MEMORY_DIR / "novel-kv-dram.yaml") | {"name": "my-dram", "capacity_per_device": "32 GB"}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    hw = load_hardware("sram-pipeline", kv_memory=str(path))
    assert [t.name for t in hw.tiers] == ["sram", "my-dram"] and hw.tier("my-dram").capacity_bytes == 32e9


def test_kv_memory_needs_a_kv_tier():
    with pytest.raises(PlannerInputError, match="kv_memory_tier: not set"):
        load_hardware("h100-sxm", kv_memory="hbm4")
    with pytest.raises(PlannerInputError, match="no such memory technology"):
        load_hardware("sram-pipeline", kv_memory="hbm9")


# ------------------------------------------------------------------------------------ bad files


def _memory(**change) -> dict:
    data = _yaml(MEMORY_DIR / "hbm3.yaml")
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def _hardware(**change) -> dict:
    data = _yaml(HARDWARE_DIR / "h100-sxm.yaml")
    for key, value in change.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


BAD_MEMORY = {
    "missing field": (_memory(bandwidth_per_device=None), "bandwidth_per_device: required field is missing"),
    "unknown field": (_memory(bandwith="1 TB/s"), "bandwith: unknown field"),
    "wrong unit": (_memory(energy="5 pJ"), "energy: '5 pJ' is not in units of pJ/bit"),
    "negative capacity": (
        _memory(capacity_per_device="-16 GB"),
        "capacity_per_device: -1.6e+10 B is negative",
    ),
    "absurd capacity": (
        _memory(capacity_per_device=1e30),
        "capacity_per_device: 1e+30 B is implausibly large",
    ),
    "absurd capacity string": (_memory(capacity_per_device="1e30 B"), "capacity_per_device"),
    "nan": (_memory(energy=float("nan")), "energy: nan is not a finite number"),
    "missing source": (_memory(sources={"energy": "x"}), "missing: capacity_per_device"),
    "bad kind": (_memory(kind="nearby"), "kind: String should match pattern"),
    "wrong type": (_memory(devices_per_reticle_die="five"), "devices_per_reticle_die"),
}


@pytest.mark.parametrize("case", list(BAD_MEMORY))
def test_bad_memory_file(tmp_path: Path, case: str):
    data, needle = BAD_MEMORY[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlannerInputError) as info:
        load_memory_tech(path)
    message = info.value.message()
    assert str(path) in message and needle in message, message


RAW_BAD = {
    "not a mapping": (b"- hbm3\n- hbm4\n", "expected a mapping of fields at the top level, got list"),
    "a bare string": (b"hbm3\n", "got str"),
    "empty": (b"# nothing\n", "the file is empty"),
    "invalid syntax": (b"name: [hbm3\nkind: off-chip\n", "not valid YAML"),
    "tab indent": (b"name: x\n\tkind: off-chip\n", "not valid YAML"),
    # the first bad byte is at offset 24: "name: hbm3\n" (11) + "description: " (13)
    "non-UTF-8": (b"name: hbm3\ndescription: \xff\xfe caf\xe9\n", "not UTF-8 text (byte 24)"),
    "huge integer": (b"capacity_per_device: " + b"9" * 5000 + b"\n", "not valid YAML"),
    "bad date": (b"name: 2020-13-45\n", "not valid YAML: month must be in 1..12"),
    "deep nesting": (b"name: " + b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
}


@pytest.mark.parametrize("case", list(RAW_BAD))
def test_unreadable_files(tmp_path: Path, case: str):
    content, needle = RAW_BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    for load in (load_memory_tech, load_hardware):
        with pytest.raises(PlannerInputError) as info:
            load(path)
        message = info.value.message()
        assert str(path) in message and needle in message, message


BAD_HARDWARE = {
    "missing chip": (_hardware(chip=None), "chip: required field is missing"),
    "unknown field": (_hardware(chips=8), "chips: unknown field"),
    "wrong unit in chip": (
        _hardware(chip=_hardware()["chip"] | {"static_power": "73 J"}),
        "chip.static_power: '73 J' is not in units of W",
    ),
    "no bf16": (_hardware(chip=_hardware()["chip"] | {"peak_flops": {"fp8": "1979 TFLOP/s"}}), "bf16"),
    "negative tier capacity": (
        _hardware(memory=[{"tech": "hbm3", "capacity": "-80 GB"}]),
        "memory.0.capacity: -8e+10 B is negative",
    ),
    "unknown technology": (
        _hardware(memory=[{"tech": "hbm9"}]),
        "memory.0.tech: hbm9: no such memory technology",
    ),
    "group without link": (_hardware(intra_group_link=None), "chips_per_group > 1 needs an intra_group_link"),
    "fraction above 1": (_hardware(achievable={"compute": 1.5}), "achievable.compute"),
    "kv tier out of range": (_hardware(kv_memory_tier=3), "kv_memory_tier 3 is not an index of memory"),
    "same tech twice": (_hardware(memory=[{"tech": "hbm3"}, {"tech": "hbm3"}]), "listed twice"),
}


@pytest.mark.parametrize("case", list(BAD_HARDWARE))
def test_bad_hardware_file(tmp_path: Path, case: str):
    data, needle = BAD_HARDWARE[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlannerInputError) as info:
        load_hardware(path)
    message = info.value.message()
    assert str(path) in message and needle in message, message


def test_hardware_with_a_bad_memory_file_names_both(tmp_path: Path):
    mem = tmp_path / "mem.yaml"
    mem.write_text(yaml.safe_dump(_memory(energy="-1 pJ/bit")))
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump(_hardware(memory=[{"tech": str(mem)}])))
    with pytest.raises(PlannerInputError) as info:
        load_hardware(hw)
    message = info.value.message()
    assert str(hw) in message and "memory.0.tech" in message and "energy" in message and "negative" in message


def test_error_message_is_short_and_printable(tmp_path: Path):
    """Forty unknown fields with control characters in their names: at most 20 listed, one line each."""
    data = _memory() | {f"bad\nfield\x1b[31m{i}": i for i in range(40)}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlannerInputError) as info:
        load_memory_tech(path)
    message = info.value.message()
    lines = message.splitlines()
    assert lines[0].endswith("40 problem(s):") and lines[-1] == "  ... and 20 more" and len(lines) == 22
    assert "\x1b" not in message and "bad\\nfield\\x1b[31m0: unknown field" in message


def test_long_or_odd_names_are_input_errors():
    with pytest.raises(PlannerInputError, match="no such hardware"):
        load_hardware("x" * 5000)  # ENAMETOOLONG from the OS
    with pytest.raises(PlannerInputError, match="no such memory technology"):
        load_memory_tech("nul\x00byte")


# ------------------------------------------------------------------------------------ through the CLI


@pytest.mark.parametrize("case", ["negative tier capacity", "wrong unit in chip", "unknown field"])
def test_cli_bad_hardware_exit_2(cli, input_error, tmp_path: Path, case: str):
    data, needle = BAD_HARDWARE[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = cli(["sol", "--model", "llama-3.1-8b", "--hardware", path, "--users", "1", "--context", "4096"])
    input_error(result, str(path), needle)


@pytest.mark.parametrize("case", ["non-UTF-8", "invalid syntax", "not a mapping"])
def test_cli_unreadable_hardware_exit_2(cli, input_error, tmp_path: Path, case: str):
    content, needle = RAW_BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    result = cli(["sol", "--model", "llama-3.1-8b", "--hardware", path, "--users", "1", "--context", "4096"])
    input_error(result, needle)


def test_cli_markup_in_names_is_printed_not_interpreted(cli, input_error, tmp_path: Path):
    """A '[/]' in a hardware name or path is text, not rich markup (it raised MarkupError)."""
    path = tmp_path / "[bold]hw.yaml"
    path.write_text(yaml.safe_dump(_hardware(name="[/]odd[bold]")))
    result = cli(["sol", "--model", "llama-3.1-8b", "--hardware", path, "--users", "1", "--context", "64"])
    assert result.exit_code == 0, result.output
    assert "[/]odd[bold]" in result.output
    result = cli(["model", "graph", "llama-3.1-8b", "--out", tmp_path / "[bold]g.json"])
    assert result.exit_code == 0 and "[bold]g.json" in result.output, result.output
    input_error(
        cli(
            [
                "sol",
                "--model",
                "llama-3.1-8b",
                "--hardware",
                tmp_path / "[/]no.yaml",
                "--users",
                "1",
                "--context",
                "64",
            ]
        ),
        "[/]no.yaml",
        "no such hardware",
    )
    input_error(
        cli(
            [
                "sol",
                "--model",
                "llama-3.1-8b",
                "--hardware",
                "h100-sxm",
                "--kv-memory",
                "hbm4",
                "--users",
                "1",
                "--context",
                "64",
            ]
        ),
        "kv_memory_tier",
    )
