"""The PowerShell scripts, read without a PowerShell (none is installable here): each parses
with tree-sitter's PowerShell grammar, and uses nothing that Windows PowerShell 5.1 lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

WINDOWS = Path(__file__).resolve().parents[2] / "packaging" / "windows"
SCRIPTS = sorted(WINDOWS.rglob("*.ps1"))


def parser():
    ts = pytest.importorskip("tree_sitter", reason="pip install tree-sitter")
    grammar = pytest.importorskip(
        "tree_sitter_powershell", reason="pip install tree-sitter-powershell"
    )
    return ts.Parser(ts.Language(grammar.language()))


def syntax_errors(source: bytes) -> list[str]:
    tree = parser().parse(source)
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line = node.start_point[0] + 1
            found.append(f"line {line}: {source[node.start_byte : node.end_byte][:60]!r}")
            continue
        stack.extend(node.children)
    return found


def test_the_grammar_catches_a_broken_script():
    assert syntax_errors(b"function f {\n  if ($a -eq 1 {\n}\n")
    assert not syntax_errors(b"function f { if ($a -eq 1) { 'x' } }\n")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_parses(script):
    assert syntax_errors(script.read_bytes()) == []


def code_lines(script: Path) -> list[tuple[int, str]]:
    """Lines outside <# #> blocks, with # comments and quoted strings blanked."""
    out, in_block = [], False
    for n, line in enumerate(script.read_text().splitlines(), 1):
        if in_block:
            in_block = "#>" not in line
            continue
        if line.lstrip().startswith("<#"):
            in_block = "#>" not in line
            continue
        line = re.sub(r"'[^']*'|\"(?:`.|[^\"`])*\"", "''", line)
        out.append((n, line.split("#", 1)[0]))
    return out


PS7_ONLY = {
    "null-coalescing ??": re.compile(r"\?\?"),
    "null-conditional ?. / ?[": re.compile(r"\$\{?\w+\}?\?[.\[]"),
    "pipeline chain && / ||": re.compile(r"&&|\|\|"),
    "ternary ? :": re.compile(r"\)\s+\?\s+\S.*\s:\s"),
    "ForEach-Object -Parallel": re.compile(r"ForEach-Object\s+-Parallel", re.I),
    "-AsHashtable (ConvertFrom-Json)": re.compile(r"-AsHashtable", re.I),
}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_runs_on_windows_powershell_5_1(script):
    found = [
        f"line {n}: {what}"
        for n, line in code_lines(script)
        for what, pattern in PS7_ONLY.items()
        if pattern.search(line)
    ]
    assert found == []


def test_sync_script_keeps_its_logic_in_functions():
    """Dot-sourcing defines the functions and runs nothing (what Pester tests rely on)."""
    text = (WINDOWS / "Sync-RmsLogs.ps1").read_text()
    defined = set(re.findall(r"^function ([\w-]+)", text, re.M))
    assert {
        "Get-UsageLogDays", "Read-SyncState", "Write-SyncState", "Publish-StagedFile",
        "Get-EventQuery", "Select-NewEvent", "Get-ExportFileName", "Resolve-UsageLogCommand",
    } <= defined  # fmt: skip
    top_level = [
        line
        for _, line in code_lines(WINDOWS / "Sync-RmsLogs.ps1")
        if re.match(r"^(Invoke-RmsLogSync|Sync-|Export-)", line)
    ]
    assert top_level == []  # the one call is inside the dot-source guard
    assert "if ($MyInvocation.InvocationName -ne '.')" in text
