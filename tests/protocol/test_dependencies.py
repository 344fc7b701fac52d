"""Who may import whom, checked on the source of every module with ast.

- protocol imports only the standard library, construct, crcmod, cobs and itself, and nothing of the
  standard library that does I/O, threads, clocks or randomness; it reads no clock and opens nothing.
- firmware_sim never imports host; host never imports firmware_sim; no package imports tests.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "firmware_sim", "host")

PROTOCOL_THIRD_PARTY = {"construct", "crcmod", "cobs"}
NO_IO = {
    "serial", "socket", "socketserver", "select", "selectors", "ssl", "threading", "_thread",
    "multiprocessing", "concurrent", "asyncio", "subprocess", "signal", "time", "random", "secrets",
    "os", "io", "pathlib", "shutil", "tempfile", "glob", "mmap", "fcntl", "termios", "tty", "pty",
    "sqlite3", "urllib", "http", "logging", "importlib",
}
"""Standard-library modules protocol must not import: ports, sockets, threads, processes, files,
clocks, randomness, and dynamic imports."""
ALLOWED_IN_PROTOCOL = (sys.stdlib_module_names - NO_IO) | PROTOCOL_THIRD_PARTY | {"protocol"}
CLOCK_METHODS = {"now", "utcnow", "today"}
NO_IO_BUILTINS = {"open", "input", "print", "__import__", "exec", "eval"}
FORBIDDEN = {
    "protocol": {"firmware_sim", "host", "tests"},
    "firmware_sim": {"host", "tests"},
    "host": {"firmware_sim", "tests"},
}


def imported_modules(tree: ast.AST, package_parts: list[str]) -> list[tuple[str, int]]:
    """Absolute names of the modules a file imports, with line numbers (relative imports resolved;
    one going above the top-level package comes back as '..')."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.module or "", node.lineno))
                continue
            base = package_parts[: len(package_parts) - node.level + 1]
            if not base:
                found.append(("..", node.lineno))
                continue
            found.append((".".join([*base, *([node.module] if node.module else [])]), node.lineno))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            found.append((node.args[0].value, node.lineno))
    return found


def violations(source: str, package_parts: list[str], filename: str = "<source>") -> list[str]:
    """Every import-rule violation in one module's source."""
    tree = ast.parse(source, filename)
    package = package_parts[0]
    out = []
    for module, line in imported_modules(tree, package_parts):
        top = module.split(".")[0]
        where = f"{filename}:{line}"
        if module == "..":
            out.append(f"{where}: relative import above the top-level package")
        elif top in FORBIDDEN[package]:
            out.append(f"{where}: {package} imports {module}")
        elif package == "protocol" and top in NO_IO:
            out.append(f"{where}: protocol imports {module} (I/O, threads, clocks or randomness)")
        elif package == "protocol" and top not in ALLOWED_IN_PROTOCOL:
            out.append(f"{where}: protocol imports {module}, which is not stdlib, construct, crcmod or cobs")
    if package == "protocol":
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name) and node.func.id in NO_IO_BUILTINS:
                out.append(f"{filename}:{node.lineno}: protocol calls {node.func.id}()")
            if isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_METHODS:
                out.append(f"{filename}:{node.lineno}: protocol reads a clock ({node.func.attr}())")
    return out


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_follows_the_import_rules(package: str) -> None:
    files = modules_of(package)
    assert files, f"no modules found in {package}/"
    found = []
    for path in files:
        parts = list(path.relative_to(ROOT).parent.parts)
        found += violations(path.read_text(encoding="utf-8"), parts, str(path.relative_to(ROOT)))
    assert found == []


def test_protocol_uses_its_third_party_libraries() -> None:
    """The allow-list is not stale: protocol really imports each of them."""
    imported = {
        module.split(".")[0]
        for path in modules_of("protocol")
        for module, _ in imported_modules(ast.parse(path.read_text(encoding="utf-8")), ["protocol"])
    }
    assert imported >= PROTOCOL_THIRD_PARTY


@pytest.mark.parametrize(("source", "package_parts"), [
    ("import socket", ["protocol"]),
    ("import serial.tools.list_ports", ["protocol"]),
    ("from time import monotonic", ["protocol"]),
    ("import threading", ["protocol"]),
    ("import asyncio", ["protocol"]),
    ("import subprocess", ["protocol"]),
    ("import random", ["protocol"]),
    ("from os import path", ["protocol"]),
    ("import numpy", ["protocol"]),
    ("from firmware_sim.clock import Clock", ["protocol"]),
    ("from datetime import datetime\nstamp = datetime.now()", ["protocol"]),
    ("data = open('x').read()", ["protocol"]),
    ("import importlib\nmod = importlib.import_module('host')", ["protocol"]),
    ("from host import cli", ["firmware_sim"]),
    ("from ..host import cli", ["firmware_sim"]),
    ("import host.session", ["firmware_sim", "links"]),
    ("from firmware_sim import session", ["host"]),
    ("__import__('firmware_sim')", ["host"]),
    ("from tests.protocol import test_records", ["host"]),
], ids=lambda v: v if isinstance(v, str) else "/".join(v))
def test_the_checker_catches_a_violation(source: str, package_parts: list[str]) -> None:
    assert violations(source, package_parts) != []


@pytest.mark.parametrize(("source", "package_parts"), [
    ("from __future__ import annotations\nimport struct\nfrom dataclasses import dataclass", ["protocol"]),
    ("from construct import Struct\nimport crcmod.predefined\nfrom cobs import cobs", ["protocol"]),
    ("from . import formats\nfrom .crc import crc32c", ["protocol"]),
    ("import time\nimport serial\nfrom protocol import encode_frame", ["firmware_sim"]),
    ("from .. import links", ["host", "transports"]),
    ("import socket\nfrom protocol.messages import Identify", ["host"]),
])
def test_the_checker_accepts_what_is_allowed(source: str, package_parts: list[str]) -> None:
    assert violations(source, package_parts) == []
