"""pycri.testing.critest: reading ginkgo's report and holding it against a list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycri.testing.critest import compare, parse_report, read_spec_list, short_message, spec_name

EXPECTED_DIR = Path(__file__).parent.parent / "integration" / "critest"


def _spec(leaf: str, state: str, message: str = "", kind: str = "It") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "ContainerHierarchyTexts": ["[k8s.io] Image Manager", "public image"],
        "LeafNodeType": kind,
        "LeafNodeText": leaf,
        "State": state,
        "RunTime": 1_500_000_000,
    }
    if message:
        spec["Failure"] = {"Message": message}
    return spec


def _report(tmp_path: Path, *specs: dict[str, Any]) -> Path:
    path = tmp_path / "report.json"
    path.write_text(
        json.dumps([{"SuiteDescription": "CRI validation", "SpecReports": list(specs)}])
    )
    return path


def test_spec_name_joins_hierarchy_and_leaf() -> None:
    assert (
        spec_name(_spec("should pull", "passed"))
        == "[k8s.io] Image Manager public image should pull"
    )


def test_parse_report_keeps_selected_specs_only(tmp_path: Path) -> None:
    results = parse_report(
        _report(
            tmp_path,
            _spec("passes", "passed"),
            _spec("fails", "failed", "expected 1\nto equal 2"),
            _spec("skips itself", "skipped", "AppArmor is disabled on this host"),
            _spec("filtered out", "skipped"),
            _spec("", "passed", kind="BeforeSuite"),
            _spec("", "failed", "no socket", kind="BeforeSuite"),
        )
    )
    assert sorted(r.state for r in results.values()) == ["failed", "failed", "passed", "skipped"]
    assert "[BeforeSuite]" in results
    passed = results["[k8s.io] Image Manager public image passes"]
    assert passed.seconds == 1.5
    assert not passed.failed
    assert results["[k8s.io] Image Manager public image fails"].failed


def test_compare_names_regressions_with_their_reason_and_lists_news(tmp_path: Path) -> None:
    results = parse_report(
        _report(
            tmp_path,
            _spec("a", "passed"),
            _spec("b", "failed", "rpc error: code = NotFound\n<*status.Error | 0x1>: {\n}"),
            _spec("c", "skipped", "AppArmor is disabled on this host"),
            _spec("d", "passed"),
        )
    )
    prefix = "[k8s.io] Image Manager public image "
    expected = {prefix + "a", prefix + "b", prefix + "c", prefix + "gone"}
    comparison = compare(results, expected)
    assert comparison.regressions == {
        prefix + "b": "failed: rpc error: code = NotFound",
        prefix + "c": "skipped: AppArmor is disabled on this host",
        prefix + "gone": "not run (renamed, or not selected?)",
    }
    assert comparison.new == [prefix + "d"]
    assert prefix + "b" in comparison.describe_regressions()


def test_short_message_is_one_bounded_line() -> None:
    text = short_message(
        "Timed out after 60s.\nExpected\n    <string>: Error\nto equal\n" + "x" * 500
    )
    assert "\n" not in text
    assert text.startswith("Timed out after 60s. Expected to equal")
    assert len(text) == 200


def test_read_spec_list_ignores_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.expected"
    path.write_text("# comment\n\nspec one\nspec two\n")
    assert read_spec_list(path) == {"spec one", "spec two"}


def test_committed_lists_are_sorted_and_unique() -> None:
    """The lists are grown by copying the report's list: keep them diffable."""
    lists = sorted(EXPECTED_DIR.glob("*.expected"))
    assert lists, f"no expected lists in {EXPECTED_DIR}"
    for path in lists:
        lines = [
            line for line in path.read_text().splitlines() if line and not line.startswith("#")
        ]
        assert lines == sorted(set(lines)), f"{path} is not sorted and unique"
