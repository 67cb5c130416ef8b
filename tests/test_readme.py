"""README.md and docs/ stay true: every command and code example they show runs.

Commands run in README order, in a private copy of the repository (its own Feast project,
the session's private Redis). A few are covered elsewhere; ``COVERED_ELSEWHERE`` says where
and why. Python examples run as scripts in the same copy.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from featurelib.redis_server import redis_server_binary
from tests.conftest import FENCE, ROOT, Repo, blocks, feast_cli, make_repo, run, run_example, set_project

COVERED_ELSEWHERE = {
    "source .venv/bin/activate": "tests run inside the venv: its bin directory is first on PATH",
    "pip install -r requirements.txt": "`make test` installs requirements.txt before running the tests",
    ".venv/bin/python -m featurelib.fast_start install": "the Makefile runs it when it creates the venv; "
                                                         "tests/test_fast_start.py checks what it writes",
    "python3 -m venv .venv": "the Makefile creates the venv the same way (requirements.txt, then the package with "
                             "-e .); test_the_install_step_installs_the_package checks the command and its effect",
    "make demo": "tests/test_demo.py runs `python -m featurelib.demo`, all that `make demo` runs after installing",
    "make test": "CI runs it (.ci/run)",
    "feast serve": "tests/test_feature_server.py starts it and runs the README's curl command against it",
    "python feature_utils.py serve": "runs until stopped: tests/test_serving_http.py starts it (with --allow-writes and "
                                     "a token too) and runs the README's curl command against it",
    "python bench/serving.py": "tests/test_bench.py runs it with a small size (the full run takes minutes)",
    "feast ui": "runs until stopped: tests/test_feast_ui.py starts it and reads the registry through its API",
    "curl": "tests/test_feature_server.py runs it against a running `feast serve`",
    "python bench/backfill.py": "tests/test_bench.py runs it with a small size (the full run takes minutes)",
    "python bench/online_store.py": "tests/test_bench.py runs it with a small size (the full run takes minutes)",
    "python bench/stream.py": "tests/test_bench.py runs it with a small size (the full run takes minutes)",
    "python bench/race.py": "tests/test_bench.py runs it with one round",
    "python bench/faults.py": "tests/test_bench.py runs it with a small size and one fault of each kind",
    "python -m featurelib.stream run": "runs until stopped: tests/test_stream_e2e.py starts it, XADDs events and reads "
                                       "them through feast serve (its --until-idle form below runs here)",
}
EXPECTED_EXIT: dict[str, tuple[int, ...]] = {
    "python feature_utils.py validate-pit --entity-id test_card --entity-type card": (2,),
    # 1 when a feature's distribution really moved between the two windows of generated data
    "python feature_utils.py drift --reference 6d..1d --recent 1d..now": (0, 1),
}


def commands(block: str) -> list[str]:
    """Logical shell commands: continuation lines joined, multi-line quotes kept whole."""
    out, current = [], ""
    for line in block.splitlines():
        current += line + "\n"
        code = "\n".join(part.split(" #")[0] for part in current.splitlines())  # an apostrophe in a comment opens no quote
        if current.rstrip().endswith("\\") or code.count("'") % 2:
            continue
        text = current.strip()
        current = ""
        if text and not text.startswith("#"):
            out.append(text)
    return out


def covered_elsewhere(command: str) -> str | None:
    if command.startswith("python -m featurelib.stream run --"):
        return None  # a form that stops by itself: run here
    for prefix, reason in COVERED_ELSEWHERE.items():
        if command == prefix or command.startswith(prefix + " ") or (prefix == "curl" and command.startswith("curl")):
            return reason
    return None


@pytest.fixture(scope="module")
def readme_repo(tmp_path_factory: pytest.TempPathFactory, redis_server) -> Repo:
    path = tmp_path_factory.mktemp("readme")
    from tests.conftest import copy_repo

    copy_repo(path)
    set_project(path, "readme_repo")
    shutil.copytree(ROOT / "docs", path / "docs")
    # Like a fresh clone: nothing in the online store yet (the README's own commands load it).
    return make_repo(path, materialize=False)


def test_readme_starts_with_the_two_commands() -> None:
    first = blocks(ROOT / "README.md", "bash")[0]
    assert [c.split("#")[0].strip() for c in commands(first)] == ["make demo", "make test"]


@pytest.mark.slow
def test_every_readme_command_runs(readme_repo: Repo, redis_server) -> None:
    ran, failures = [], []
    for block in blocks(ROOT / "README.md", "bash"):
        for command in commands(block):
            bare = command.split(" #")[0].strip()
            if covered_elsewhere(bare):
                continue
            if bare == "redis-cli ping":  # never the Redis on :6379: the configured (private) one
                cli = Path(redis_server_binary()).with_name("redis-cli")
                bare = f"{cli if cli.exists() else 'redis-cli'} -p {redis_server.port} ping"
            result = run(["bash", "-c", bare], readme_repo.path, check=False, timeout=600)
            ran.append(bare)
            expected = EXPECTED_EXIT.get(bare, (0,))
            if result.returncode not in expected:
                failures.append(f"{bare!r} exited {result.returncode}, expected {expected}:\n"
                                f"{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
            if bare.endswith("ping"):
                assert "PONG" in result.stdout
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 15


def test_every_readme_python_example_runs(readme_repo: Repo) -> None:
    examples = blocks(ROOT / "README.md", "python")
    assert len(examples) >= 4
    for code in examples:
        result = run_example(code, readme_repo.path)
        assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert result.stdout.strip(), "every example prints something"


def test_the_install_step_installs_the_package(readme_repo: Repo, tmp_path: Path) -> None:
    """Quick start step 1 creates the venv and installs ``featurelib`` with the requirements, so
    Feast loads the repository from any directory (``feature_store.yaml`` names featurelib classes)."""
    (install, fast_start, _activate) = commands(blocks(ROOT / "README.md", "bash")[1])
    assert fast_start.split(" #")[0].strip() == ".venv/bin/python -m featurelib.fast_start install"
    assert install.startswith("python3 -m venv .venv && ") and install.endswith("pip install -r requirements.txt -e .")
    code = f"from feast import FeatureStore; print(len(FeatureStore(repo_path={str(readme_repo.path)!r}).list_feature_views()))"
    result = run([sys.executable, "-c", code], tmp_path)  # another directory: featurelib comes from the install
    assert result.stdout.strip() == "5"


def test_examples_use_time_zone_aware_timestamps() -> None:
    """Feast reads a naive timestamp as UTC: an example built on ``datetime.now()`` looks features up
    hours off on any machine not set to UTC. Every Python example gives its timestamps a zone."""
    for path in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for code in blocks(path, "python"):
            assert not re.search(r"datetime\.now\(\s*\)|datetime\.utcnow\(|pd\.Timestamp\.now\(\s*\)", code), path.name


def test_training_doc_examples_run(readme_repo: Repo) -> None:
    examples = blocks(ROOT / "docs" / "TRAINING.md", "python")
    assert len(examples) == 4
    for code in examples:
        if "log_model_with_spec" in code:
            continue  # the MLflow example: tests/test_mlflow.py runs it with its own tracking store
        result = run_example(code, readme_repo.path)
        assert result.returncode == 0, f"{code}\n{result.stderr[-2000:]}"
        assert "txn_count_5m" in result.stdout


def test_streaming_doc_example_runs(readme_repo: Repo) -> None:
    """docs/STREAMING.md: a job pushes the row it computed itself through Feast."""
    (code,) = blocks(ROOT / "docs" / "STREAMING.md", "python")
    result = run_example(code, readme_repo.path)
    assert result.returncode == 0, f"{code}\n{result.stderr[-2000:]}"
    assert "card_67890" in result.stdout and "txn_count_30m" in result.stdout


def test_serving_doc_example_runs(readme_repo: Repo) -> None:
    """docs/SERVING.md: the feature service fetched once, then read per request."""
    (code,) = blocks(ROOT / "docs" / "SERVING.md", "python")
    result = run_example(code, readme_repo.path)
    assert result.returncode == 0, f"{code}\n{result.stderr[-2000:]}"
    assert result.stdout.strip() == "['card_12345']"


def test_monitoring_doc_example_runs(readme_repo: Repo) -> None:
    """docs/MONITORING.md: build a training set and a served set, then compare them."""
    (code,) = blocks(ROOT / "docs" / "MONITORING.md", "python")
    result = run_example(code, readme_repo.path)
    assert result.returncode == 0, f"{code}\n{result.stderr[-2000:]}"
    assert "training rows" in result.stdout
    command = next(line for line in code.splitlines() if "feature_utils.py drift" in line).lstrip("# ")
    drift = run(["bash", "-c", command + " --json"], readme_repo.path, check=False)
    assert drift.returncode in (0, 1), drift.stderr  # 1 when a feature really moved between the two periods
    report = json.loads(drift.stdout)
    assert {f["view"] for f in report["features"]} == {"transaction_stats_5m", "card_profile_24h", "device_activity_24h"}
    trained, served = (int(n) for n in re.search(r"(\d+) training rows, (\d+) served rows", result.stdout).groups())
    sizes = {f["feature"]: (f["reference_rows"], f["recent_rows"]) for f in report["features"]}
    assert trained > 0 and served > 0 and set(sizes.values()) == {(trained, served)}, (trained, served, sizes)


def test_stream_contract_example_runs_as_written(tmp_path: Path) -> None:
    """The redis-cli example of docs/STREAM_CONTRACT.md, against a server of its own."""
    from featurelib.redis_server import RedisServer
    from tests.conftest import copy_repo

    repo = copy_repo(tmp_path / "repo")
    shutil.copytree(ROOT / "featurelib", repo / "featurelib", ignore=shutil.ignore_patterns("__pycache__"))
    cli = Path(redis_server_binary()).with_name("redis-cli")
    with RedisServer() as server:
        env = {"REDIS_CONNECTION_STRING": server.connection_string}
        feast_cli(repo, "apply", env=env)
        outputs = []
        for block in blocks(ROOT / "docs" / "STREAM_CONTRACT.md", "bash"):
            script = block.replace("redis-cli ", f"{cli if cli.exists() else 'redis-cli'} -p {server.port} ")
            outputs.append(run(["bash", "-ec", script], repo, env=env).stdout.split())
        example, xadd = outputs
        assert example[:3] == ["1", "2", "0"]  # written, its value, the older row ignored
        import ast

        served = ast.literal_eval(" ".join(example[3:]))
        assert served == {"card_id": ["card_99999"], "txn_count_5m": [2], "amount_avg_5m": [42.25]}
        assert server.client().xlen("events:transactions") == 1 and len(xadd) == 1


def test_docs_contain_no_other_commands() -> None:
    """docs/*.md show commands only where a test above runs them."""
    tested = {"STREAM_CONTRACT.md": {"python", "", "bash"}}
    for path in (ROOT / "docs").glob("*.md"):
        for lang, _ in FENCE.findall(path.read_text()):
            assert lang in tested.get(path.name, {"python", ""}), f"{path.name}: a `{lang}` block needs a test that runs it"
