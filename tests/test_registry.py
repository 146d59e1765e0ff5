"""The component registry: entry points, lazy imports, broken and clashing plugins."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper import registry
from shipper.config import parse_config
from shipper.errors import ConfigError

READERS = ("shipper.sources.w3c", "shipper.sources.evtx_file", "shipper.sources.eventxml",
           "shipper.sources.eventjson", "shipper.sources.eventcsv", "shipper.sources.perfcsv",
           "shipper.sources.perfjson", "shipper.sources.pdh")  # fmt: skip
NORMALISERS = ("shipper.normalise.rms", "shipper.normalise.winlog", "shipper.normalise.perf",
               "shipper.normalise.ecma2host")  # fmt: skip
OUTPUTS = ("shipper.outputs.csv", "shipper.outputs.stdout", "shipper.outputs.elasticsearch",
           "shipper.outputs.syslog", "shipper.outputs.fluentd")  # fmt: skip


def imported_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_validating_a_config_imports_only_the_components_it_names():
    mods = imported_after(
        "from shipper.config import parse_config\n"
        "parse_config({'inputs': [{'type': 'rms_usage', 'paths': ['x']},"
        " {'type': 'windows_perf', 'paths': ['y']}],"
        " 'outputs': [{'type': 'ndjson'}]})"
    )
    assert "shipper.sources.rms_usage" in mods and "shipper.outputs.ndjson" in mods
    assert not mods & set(READERS), mods & set(READERS)
    assert not mods & set(OUTPUTS), mods & set(OUTPUTS)
    assert not {m for m in mods if m.startswith(NORMALISERS)}  # looked up, not imported
    assert not {"evtx", "elasticsearch", "elastic_transport"} & mods


def test_help_imports_neither_the_config_nor_any_component():
    mods = imported_after(
        "from shipper.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert "shipper.config" not in mods and "pydantic" not in mods
    assert not {m for m in mods if m.startswith(("shipper.sources", "shipper.outputs"))}


def test_a_decoder_finds_its_format_without_pydantic_or_the_other_readers():
    mods = imported_after("from shipper.sources import FORMATS\nFORMATS['w3c_rms']")
    assert "shipper.sources.w3c" in mods
    assert "pydantic" not in mods and "shipper.config" not in mods
    assert not mods & (set(READERS) - {"shipper.sources.w3c"})


def test_unknown_type_lists_what_is_installed():
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": [{"type": "perfmon", "paths": ["x"]}]})
    assert str(e.value).startswith("inputs[0].type: unknown input type 'perfmon' (installed: ")
    assert "rms_usage" in str(e.value) and "windows_events" in str(e.value)
    with pytest.raises(ConfigError, match=r"outputs\[1\]\.type: unknown output type 'kafka'.*csv"):
        parse_config({"outputs": [{"type": "ndjson"}, {"type": "kafka"}]})


def test_errors_inside_a_component_keep_their_path():
    with pytest.raises(ConfigError) as e:
        parse_config({"outputs": [{"type": "ndjson"}, {"type": "opensearch", "max_in_flight": 0}]})
    assert str(e.value).startswith("outputs[1].max_in_flight: ")


# --- third-party distributions, made on the spot ----------------------------------------------


def distribution(root: Path, name: str, entry_points: dict[str, dict[str, str]],
                 modules: dict[str, str]) -> None:  # fmt: skip
    """An installed distribution as pip leaves it: a .dist-info folder and its modules."""
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, text in modules.items():
        (root / f"{module}.py").write_text(text)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    registry.refresh()
    yield root
    monkeypatch.undo()
    registry.refresh()


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(site: Path):
    distribution(
        site,
        "shipper-kaput",
        {"shipper.outputs": {"kaput": "kaput_output"}},
        {"kaput_output": "import no_such_library_here\n"},
    )
    registry.refresh()
    with pytest.raises(ConfigError) as e:
        parse_config({"outputs": [{"type": "kaput"}]})
    message = str(e.value)
    assert message.startswith("outputs[0].type: output 'kaput' from shipper-kaput 1.2.3 ")
    assert "no_such_library_here" in message
    cfg = parse_config({"outputs": [{"type": "ndjson"}, {"type": "csv"}]})  # the others work
    assert [o.type for o in cfg.outputs] == ["ndjson", "csv"]


def test_a_plugin_without_what_the_contract_asks_is_refused_clearly(site: Path):
    distribution(
        site, "half-done", {"shipper.outputs": {"half": "half_output"}}, {"half_output": "x = 1\n"}
    )
    registry.refresh()
    with pytest.raises(ConfigError, match=r"'half' from half-done 1.2.3 .* Settings, build"):
        parse_config({"outputs": [{"type": "half"}]})


def test_a_name_registered_twice_is_refused_not_guessed(site: Path):
    distribution(site, "impostor", {"shipper.outputs": {"ndjson": "os"}}, {})
    registry.refresh()
    both = (
        r"'ndjson' is registered by both"
        r" (impostor 1.2.3 and rms-shipper|rms-shipper .* and impostor)"
    )
    with pytest.raises(ConfigError, match=both):
        parse_config({"outputs": [{"type": "ndjson"}]})


def test_plugins_lists_every_component_with_its_distribution(tmp_path: Path, cli, repo):
    site = tmp_path / "site"
    distribution(
        site,
        "shipper-kaput",
        {"shipper.outputs": {"kaput": "kaput_output"}},
        {"kaput_output": "raise RuntimeError('broken on purpose')\n"},
    )
    result = cli("plugins", cwd=tmp_path, env={"PYTHONPATH": f"{repo}:{site}"})
    assert result.returncode == 1, result  # one of them cannot be imported
    listed = {}
    section = ""
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        name, dist, version = line.split()[:3]
        listed[(section, name)] = f"{dist} {version}"
    for kind in registry.KINDS:
        for name, found in registry.entries(kind).items():
            assert listed[(kind, name)] == found.provider
    assert listed[("outputs", "csv")].startswith("rms-shipper ")
    assert listed[("formats", "w3c_rms")].startswith("rms-shipper ")
    assert listed[("sources", "rms_usage")].startswith("rms-shipper ")
    assert listed[("outputs", "kaput")] == "shipper-kaput 1.2.3"
    assert "kaput: output 'kaput' from shipper-kaput 1.2.3 cannot be imported" in result.stderr
    assert "broken on purpose" in result.stderr


# --- an input's `formats:` setting: its own formats by default, or others (a plugin's) -------


def test_a_built_in_input_reads_with_a_plugin_format_named_in_its_settings(
    site: Path, tmp_path: Path, cli, repo
):
    distribution(
        site,
        "shipper-rmscopy",
        {"shipper.formats": {"rms_copy": "rms_copy_format"}},
        {
            "rms_copy_format": "import dataclasses\n"
            "from shipper.sources.w3c import W3C_RMS\n"
            "FORMAT = dataclasses.replace(W3C_RMS, name='rms_copy')\n"
        },
    )
    registry.refresh()
    logs = str(repo / "examples" / "rms" / "*.log")
    assert parse_config({"inputs": [{"type": "rms_usage", "paths": [logs]}]}).inputs[0].formats == [
        "w3c_rms"
    ]  # the input's own by default
    inputs = [{"type": "rms_usage", "paths": [logs], "formats": ["rms_copy"]}]
    assert parse_config({"inputs": inputs}).inputs[0].formats == ["rms_copy"]

    config = tmp_path / "shipper.yaml"
    out = tmp_path / "events.ndjson"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "inputs": inputs,
                                  "outputs": [{"type": "ndjson", "path": str(out)}]}))  # fmt: skip
    done = cli("run", "--once", str(config), cwd=tmp_path, env={"PYTHONPATH": f"{repo}:{site}"})
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) > 10 and {e["event"]["dataset"] for e in events} == {"azure_rms.usage"}


def test_an_input_s_formats_setting_is_checked_like_its_own():
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": [{"type": "windows_events", "paths": ["x"],
                                  "formats": ["evtx", "evtxx"]}]})  # fmt: skip
    assert str(e.value).startswith("inputs[0].formats: unknown format 'evtxx' (installed: ")
    with pytest.raises(ConfigError, match=r"^inputs\[0\]\.formats: List should have at least 1"):
        parse_config({"inputs": [{"type": "windows_events", "paths": ["x"], "formats": []}]})


# --- the example plugin (examples/plugins/shipper-logfmt), installed as a user would ------------


def test_the_example_plugin_installs_and_ships_the_examples_exactly_once(tmp_path: Path, cli, repo):
    import shutil

    source = tmp_path / "src"  # a copy: building leaves egg-info and build/ beside the sources
    shutil.copytree(repo / "examples" / "plugins" / "shipper-logfmt", source)
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    if done.returncode and "satisfies the requirement setuptools" in done.stderr:
        pytest.skip("pip cannot fetch the example's build backend (setuptools) here")
    assert done.returncode == 0, done.stderr
    env = {"PYTHONPATH": f"{repo}:{site}"}

    listed = cli("plugins", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:3] == ["logfmt", "shipper-logfmt", "0.1.0"]
               for line in listed.stdout.splitlines())  # fmt: skip

    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [
                    {"type": "rms_usage", "paths": [str(repo / "examples" / "rms" / "*")]},
                    {"type": "windows_events", "paths": [str(repo / "examples/windows/*")]},
                ],
                "outputs": [
                    {"type": "logfmt", "path": str(tmp_path / "out" / "events.logfmt")},
                    {"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")},
                ],
            }
        )
    )
    first = cli("run", "--once", str(cfg), cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    again = cli("run", "--once", str(cfg), cwd=tmp_path, env=env)
    assert again.returncode == 0 and "shipped 0 events" in again.stderr, again.stderr

    want = [json.loads(line)["event"]["id"]
            for line in (tmp_path / "out" / "events.ndjson").read_text().splitlines()]  # fmt: skip
    lines = (tmp_path / "out" / "events.logfmt").read_text(encoding="utf-8").splitlines()
    got = [next(p[len("event.id="):] for p in line.split(" ") if p.startswith("event.id="))
           for line in lines]  # fmt: skip
    assert len(want) > 100 and got == [g.strip('"') for g in got]
    assert got == want
    assert {"event.dataset=azure_rms.usage" in line for line in lines} == {True, False}


def test_a_source_tree_that_was_never_installed_still_finds_its_built_ins(repo):
    """Without site-packages there is no installed metadata: the built-ins come from
    pyproject.toml beside the package (running from a checkout)."""
    code = (
        f"import sys; sys.path.insert(0, {str(repo)!r})\n"
        "from shipper import registry\n"
        "print(registry.entry('outputs', 'csv').provider, registry.names('formats'))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60
    )
    if done.returncode and "tomllib" in done.stderr:
        pytest.skip("Python 3.10 has no tomllib: install the package instead")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("rms-shipper 0.1.0 (source tree) ")
    assert "w3c_rms" in done.stdout and "evtx" in done.stdout


# --- an input's formats and normaliser: checked by name, loaded by `check`, skipped when broken


def rms_source(name: str, formats: tuple[str, ...], normaliser: str = "azure_rms") -> str:
    """A plugin input reading RMS usage logs with ``formats`` and ``normaliser``."""
    return (
        "from typing import ClassVar, Literal\n"
        "from shipper.settings import SourceSettings\n"
        "class Settings(SourceSettings):\n"
        f"    default_formats: ClassVar[tuple[str, ...]] = {formats!r}\n"
        f"    normaliser: ClassVar[str] = {normaliser!r}\n"
        f"    type: Literal[{name!r}] = {name!r}\n"
    )


def test_an_unknown_format_or_normaliser_is_a_config_error_listing_the_installed(site: Path):
    distribution(
        site,
        "shipper-typo",
        {"shipper.sources": {"rms_typo": "rms_typo_source"}},
        {"rms_typo_source": rms_source("rms_typo", ("no_such_format", "w3c_rms"), "no_such")},
    )
    registry.refresh()
    with pytest.raises(ConfigError) as e:
        parse_config({"inputs": [{"type": "rms_usage", "paths": ["x"]},
                                 {"type": "rms_typo", "paths": ["x"]}]})  # fmt: skip
    lines = str(e.value).splitlines()
    assert lines[0].startswith("inputs[1].formats: unknown format 'no_such_format' (installed: ")
    assert "w3c_rms" in lines[0] and "perf_csv" in lines[0]
    assert lines[1].startswith("inputs[1].normaliser: unknown normaliser 'no_such' (installed: ")
    assert "azure_rms" in lines[1] and "windows_perf" in lines[1]
    assert len(lines) == 2


def test_an_unknown_format_name_says_which_are_installed():
    from shipper.sources import FORMATS

    with pytest.raises(registry.UnknownComponent, match=r"'no_such_format' \(installed: .*w3c"):
        FORMATS["no_such_format"]
    assert FORMATS.get("no_such_format") is None and "no_such_format" not in FORMATS


def test_a_broken_plugin_format_is_named_by_check_and_skipped_at_run(
    site: Path, tmp_path: Path, cli, repo
):
    from shipper.check import reader_problems

    distribution(
        site,
        "shipper-kaput",
        {
            "shipper.formats": {"kaput": "kaput_format:KAPUT"},
            "shipper.sources": {"rms_kaput": "rms_kaput_source"},
        },
        {
            "kaput_format": "import no_such_library_here\n",
            "rms_kaput_source": rms_source("rms_kaput", ("kaput", "w3c_rms")),
        },
    )
    registry.refresh()
    inputs = [{"type": "rms_kaput", "paths": [str(repo / "examples" / "rms" / "*.log")]}]
    cfg = parse_config({"inputs": inputs})  # registered: the configuration is valid
    problems = list(reader_problems(cfg))
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        "inputs[0].formats: format 'kaput' from shipper-kaput 1.2.3 cannot be imported"
    )
    assert "no_such_library_here" in problems[0]

    config = tmp_path / "shipper.yaml"
    out = tmp_path / "events.ndjson"
    config.write_text(json.dumps({"data_dir": str(tmp_path / "data"), "inputs": inputs,
                                  "outputs": [{"type": "ndjson", "path": str(out)}]}))  # fmt: skip
    env = {"PYTHONPATH": f"{repo}:{site}"}
    checked = cli("check", str(config), cwd=tmp_path, env=env)
    assert checked.returncode == 1
    assert "error: inputs[0].formats: format 'kaput' from shipper-kaput 1.2.3" in checked.stderr
    done = cli("run", "--once", str(config), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr  # every file read by w3c_rms, after kaput
    assert len(out.read_text().splitlines()) > 10
    said = [line for line in done.stderr.splitlines() if "format kaput skipped" in line]
    assert len(said) == 1 and "shipper-kaput 1.2.3" in said[0], done.stderr


def test_no_output_imports_another():
    """Each output is its own component: what two outputs share lives outside them
    (``shipper.outputs.base``, ``appendfile``, ``shipper.rejects``), so that removing or
    replacing one output never breaks another."""
    import ast

    root = Path(registry.__file__).parent / "outputs"
    shared = {"base", "appendfile"}
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        own = rel.parts[0].removesuffix(".py")
        if own in shared | {"__init__"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["shipper", "outputs"] and len(parts) > 2:
                    if parts[2] not in shared | {own}:
                        found.append(f"{rel}: {name}")
    assert not found, found


#: the modules that run every configuration: none may switch on a component's name
CORE = ("cli.py", "status.py", "check.py", "preflight.py", "config.py", "pipeline/*.py",
        "decoding.py", "logs.py", "service.py")  # fmt: skip
#: (module, name) allowed: the quick-start default, the one output a configuration without
#: ``outputs:`` gets (config.py ``_default_outputs``); and the suffix of a spool file of
#: newline-delimited JSON documents (decoding.py ``_spooled_run``), the file format, not the
#: output of that name
ALLOWED = {("config.py", "ndjson"), ("decoding.py", "ndjson")}


def test_core_modules_name_no_component():
    """A component is added or removed in its own module and ``pyproject.toml``: no core module
    holds its name (nor its client library's loggers) as a string."""
    import ast

    root = Path(registry.__file__).parent
    names = {n for kind in registry.KINDS for n in registry.names(kind)}
    names |= {"elastic_transport", "urllib3"}  # the elasticsearch output's client library
    found = []
    for pattern in CORE:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in names:
                    if (rel, node.value) not in ALLOWED:
                        found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert not found, found


def test_the_elasticsearch_client_stays_quiet_even_with_verbose():
    """Its per-request INFO lines and dead-node warnings would drown the shipper's own: the
    output quiets them itself, whichever is set up first, logging or the output."""
    code = (
        "import logging\n"
        "from shipper.logs import setup_logging\n"
        "{first}\n{second}\n"
        "print([logging.getLogger(n).getEffectiveLevel() for n in"
        " ('elastic_transport', 'elasticsearch', 'urllib3', 'elastic_transport.node_pool')])"
    )
    setup = "setup_logging(verbose=True)"
    load = "import shipper.outputs.elasticsearch.transport"
    for first, second in ((setup, load), (load, setup)):
        done = subprocess.run([sys.executable, "-c", code.format(first=first, second=second)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["[30,", "30,", "30,", "40]"], done.stdout
