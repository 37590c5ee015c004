"""`--shard auto` / `--resume-id auto`: the CI conventions of pytest_resumable.ci (SPEC §6).

Plain functions on plain dicts: no pytester, no conftest fixtures.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_resumable.ci import MAX_SHARDS, CIDetectionError, detect_run_id, detect_shard

# --------------------------------------------------------------------------------------------
# detect_shard


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # GitLab: 1-based, read only on GitLab
        ({"GITLAB_CI": "true", "CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, (1, 4)),
        ({"GITLAB_CI": "true", "CI_NODE_INDEX": "4", "CI_NODE_TOTAL": "4"}, (4, 4)),
        # a GitLab job without parallel: has CI_NODE_TOTAL=1 and no CI_NODE_INDEX
        ({"GITLAB_CI": "true", "CI_NODE_TOTAL": "1"}, (1, 1)),
        # CircleCI: 0-based
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "3"}, (1, 3)),
        ({"CIRCLE_NODE_INDEX": "2", "CIRCLE_NODE_TOTAL": "3"}, (3, 3)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "1"}, (1, 1)),
        # Buildkite: 0-based
        ({"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "5"}, (1, 5)),
        ({"BUILDKITE_PARALLEL_JOB": "4", "BUILDKITE_PARALLEL_JOB_COUNT": "5"}, (5, 5)),
        # Azure Pipelines: 1-based, 1/1 in a job without a parallel strategy
        ({"SYSTEM_JOBPOSITIONINPHASE": "1", "SYSTEM_TOTALJOBSINPHASE": "2"}, (1, 2)),
        ({"SYSTEM_JOBPOSITIONINPHASE": "2", "SYSTEM_TOTALJOBSINPHASE": "2"}, (2, 2)),
        ({"SYSTEM_JOBPOSITIONINPHASE": "1", "SYSTEM_TOTALJOBSINPHASE": "1"}, (1, 1)),
        # the upper bound
        ({"CIRCLE_NODE_INDEX": "9999", "CIRCLE_NODE_TOTAL": str(MAX_SHARDS)}, (10000, 10000)),
        # surrounding blanks (a value read from a file) are not an error; leading zeros neither
        ({"CIRCLE_NODE_INDEX": " 1\n", "CIRCLE_NODE_TOTAL": "03"}, (2, 3)),
        # GITLAB_CI is compared case-insensitively
        ({"GITLAB_CI": "TRUE", "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}, (2, 2)),
    ],
)
def test_shard_from_each_ci(env: dict[str, str], expected: tuple[int, int]) -> None:
    assert detect_shard(env) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # vendor-prefixed pairs win over the generic CI_NODE_* names
        (
            {
                "GITLAB_CI": "true",
                "CI_NODE_INDEX": "1",
                "CI_NODE_TOTAL": "2",
                "CIRCLE_NODE_INDEX": "1",
                "CIRCLE_NODE_TOTAL": "2",
            },
            (2, 2),
        ),
        # CircleCI before Buildkite before Azure
        (
            {
                "BUILDKITE_PARALLEL_JOB": "0",
                "BUILDKITE_PARALLEL_JOB_COUNT": "7",
                "CIRCLE_NODE_INDEX": "2",
                "CIRCLE_NODE_TOTAL": "3",
                "SYSTEM_JOBPOSITIONINPHASE": "1",
                "SYSTEM_TOTALJOBSINPHASE": "9",
            },
            (3, 3),
        ),
        (
            {
                "BUILDKITE_PARALLEL_JOB": "0",
                "BUILDKITE_PARALLEL_JOB_COUNT": "7",
                "SYSTEM_JOBPOSITIONINPHASE": "1",
                "SYSTEM_TOTALJOBSINPHASE": "9",
            },
            (1, 7),
        ),
        # a half-set pair is skipped for the next complete one
        (
            {
                "CIRCLE_NODE_INDEX": "1",
                "SYSTEM_JOBPOSITIONINPHASE": "3",
                "SYSTEM_TOTALJOBSINPHASE": "4",
            },
            (3, 4),
        ),
        # an empty value counts as unset
        (
            {
                "CIRCLE_NODE_INDEX": "",
                "CIRCLE_NODE_TOTAL": "",
                "BUILDKITE_PARALLEL_JOB": "1",
                "BUILDKITE_PARALLEL_JOB_COUNT": "2",
            },
            (2, 2),
        ),
    ],
)
def test_shard_order_when_several_cis_are_present(
    env: dict[str, str], expected: tuple[int, int]
) -> None:
    assert detect_shard(env) == expected


def test_no_shard_variables_names_every_variable() -> None:
    with pytest.raises(CIDetectionError) as info:
        detect_shard({"GITHUB_ACTIONS": "true", "PATH": "/usr/bin"})
    message = str(info.value)
    assert message.startswith("--shard auto: no CI shard variables found; looked for ")
    for name in (
        "CI_NODE_INDEX/CI_NODE_TOTAL (GitLab",
        "CIRCLE_NODE_INDEX/CIRCLE_NODE_TOTAL (CircleCI)",
        "BUILDKITE_PARALLEL_JOB/BUILDKITE_PARALLEL_JOB_COUNT (Buildkite)",
        "SYSTEM_JOBPOSITIONINPHASE/SYSTEM_TOTALJOBSINPHASE (Azure Pipelines)",
        "GITLAB_CI=true",
    ):
        assert name in message
    assert message.endswith("; pass --shard K/N")
    assert "\n" not in message


def test_generic_ci_node_names_are_not_read_as_gitlab_off_gitlab() -> None:
    # Heroku CI sets the same names 0-based: reading them 1-based would run one shard twice
    # and another never, so without GITLAB_CI they are not used, and the message says why.
    for gitlab_ci in (None, "", "false"):
        env = {"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "2"}
        if gitlab_ci is not None:
            env["GITLAB_CI"] = gitlab_ci
        with pytest.raises(CIDetectionError, match="ignored without GITLAB_CI=true"):
            detect_shard(env)


def test_half_set_pair_is_reported() -> None:
    with pytest.raises(CIDetectionError, match=r"\(CIRCLE_NODE_TOTAL without CIRCLE_NODE_INDEX\)"):
        detect_shard({"CIRCLE_NODE_TOTAL": "3"})


def test_gitlab_total_above_one_without_index_is_not_a_shard() -> None:
    with pytest.raises(CIDetectionError, match="CI_NODE_TOTAL without CI_NODE_INDEX"):
        detect_shard({"GITLAB_CI": "true", "CI_NODE_TOTAL": "3"})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"CIRCLE_NODE_INDEX": "x", "CIRCLE_NODE_TOTAL": "3"},
            "--shard auto: CIRCLE_NODE_INDEX='x' (CircleCI, 0-based) is not a non-negative "
            "integer; pass --shard K/N",
        ),
        (
            {"CIRCLE_NODE_INDEX": "-1", "CIRCLE_NODE_TOTAL": "3"},
            "--shard auto: CIRCLE_NODE_INDEX='-1' (CircleCI, 0-based) is not a non-negative "
            "integer; pass --shard K/N",
        ),
        (
            {"BUILDKITE_PARALLEL_JOB": "1", "BUILDKITE_PARALLEL_JOB_COUNT": "2.0"},
            "--shard auto: BUILDKITE_PARALLEL_JOB_COUNT='2.0' (Buildkite, 0-based) is not a "
            "non-negative integer; pass --shard K/N",
        ),
        (
            {"CIRCLE_NODE_INDEX": "3", "CIRCLE_NODE_TOTAL": "3"},
            "--shard auto: CIRCLE_NODE_INDEX='3' is out of range for CIRCLE_NODE_TOTAL='3' "
            "(CircleCI, 0-based: expected 0..2); pass --shard K/N",
        ),
        (
            {"GITLAB_CI": "true", "CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"},
            "--shard auto: CI_NODE_INDEX='0' is out of range for CI_NODE_TOTAL='3' "
            "(GitLab, 1-based: expected 1..3); pass --shard K/N",
        ),
        (
            {"SYSTEM_JOBPOSITIONINPHASE": "5", "SYSTEM_TOTALJOBSINPHASE": "4"},
            "--shard auto: SYSTEM_JOBPOSITIONINPHASE='5' is out of range for "
            "SYSTEM_TOTALJOBSINPHASE='4' (Azure Pipelines, 1-based: expected 1..4); "
            "pass --shard K/N",
        ),
        (
            {"SYSTEM_JOBPOSITIONINPHASE": "1", "SYSTEM_TOTALJOBSINPHASE": "10001"},
            "--shard auto: SYSTEM_TOTALJOBSINPHASE='10001' (Azure Pipelines) is out of range: "
            "expected 1..10000; pass --shard K/N",
        ),
        (
            {"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "0"},
            "--shard auto: BUILDKITE_PARALLEL_JOB_COUNT='0' (Buildkite) is out of range: "
            "expected 1..10000; pass --shard K/N",
        ),
    ],
)
def test_malformed_shard_values(env: dict[str, str], expected: str) -> None:
    with pytest.raises(CIDetectionError) as info:
        detect_shard(env)
    assert str(info.value) == expected


def test_malformed_first_pair_is_an_error_not_a_fallthrough() -> None:
    env = {
        "CIRCLE_NODE_INDEX": "five",
        "CIRCLE_NODE_TOTAL": "3",
        "SYSTEM_JOBPOSITIONINPHASE": "1",
        "SYSTEM_TOTALJOBSINPHASE": "2",
    }
    with pytest.raises(CIDetectionError, match="CIRCLE_NODE_INDEX='five'"):
        detect_shard(env)


@pytest.mark.parametrize(
    "value",
    ["1\x1b[2J", "1\n2", "\u0661", "+1", "1_0", "9" * 5000, "x" * 500],
)
def test_hostile_values_give_one_short_line(value: str) -> None:
    with pytest.raises(CIDetectionError) as info:
        detect_shard({"CIRCLE_NODE_INDEX": value, "CIRCLE_NODE_TOTAL": "2"})
    message = str(info.value)
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 200


def test_error_is_a_value_error() -> None:
    assert issubclass(CIDetectionError, ValueError)


_SHARD_NAMES = (
    "GITLAB_CI",
    "CI_NODE_INDEX",
    "CI_NODE_TOTAL",
    "CIRCLE_NODE_INDEX",
    "CIRCLE_NODE_TOTAL",
    "BUILDKITE_PARALLEL_JOB",
    "BUILDKITE_PARALLEL_JOB_COUNT",
    "SYSTEM_JOBPOSITIONINPHASE",
    "SYSTEM_TOTALJOBSINPHASE",
)
_values = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-3, max_value=MAX_SHARDS + 3).map(str),
    st.sampled_from(["true", "TRUE", "false", "", " 1 ", "0", "1"]),
)


# the machine is shared: a slow draw is not a failure
_relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_relaxed
@given(st.dictionaries(st.sampled_from(_SHARD_NAMES), _values))
def test_property_valid_shard_or_clear_error(env: dict[str, str]) -> None:
    shard: tuple[int, int] | None = None
    message = ""
    try:
        shard = detect_shard(env)
    except CIDetectionError as exc:
        message = str(exc)
    if shard is None:
        assert message.startswith("--shard auto: ")
        assert message.endswith("; pass --shard K/N")
        assert "\n" not in message
    else:
        k, n = shard
        assert type(k) is int
        assert type(n) is int
        assert 1 <= k <= n <= MAX_SHARDS


# --------------------------------------------------------------------------------------------
# detect_run_id


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_RUN_ID": "123456"}, "github-123456"),
        ({"CI_PIPELINE_ID": "98765"}, "gitlab-98765"),
        (
            {"CIRCLE_WORKFLOW_ID": "5f6c6b0a-0c1d-4e2f-9a3b-1c2d3e4f5a6b"},
            "circleci-5f6c6b0a-0c1d-4e2f-9a3b-1c2d3e4f5a6b",
        ),
        (
            {"BUILDKITE_BUILD_ID": "4735ba57-80d0-46e2-8fa0-b28223a86586"},
            "buildkite-4735ba57-80d0-46e2-8fa0-b28223a86586",
        ),
        ({"BUILD_BUILDID": "4711"}, "azure-4711"),
        ({"GITHUB_RUN_ID": " 123\n"}, "github-123"),
    ],
)
def test_run_id_from_each_ci(env: dict[str, str], expected: str) -> None:
    assert detect_run_id(env) == expected


def test_github_rerun_continues_the_same_run() -> None:
    first = detect_run_id({"GITHUB_RUN_ID": "777", "GITHUB_RUN_ATTEMPT": "1"})
    retry = detect_run_id({"GITHUB_RUN_ID": "777", "GITHUB_RUN_ATTEMPT": "2"})
    assert first == retry == "github-777"


def test_circleci_rerun_continues_the_same_run() -> None:
    # a rerun workflow gets a new CIRCLE_WORKFLOW_ID and keeps CIRCLE_WORKFLOW_WORKSPACE_ID
    first = detect_run_id({"CIRCLE_WORKFLOW_ID": "aaa", "CIRCLE_WORKFLOW_WORKSPACE_ID": "aaa"})
    rerun = detect_run_id({"CIRCLE_WORKFLOW_ID": "bbb", "CIRCLE_WORKFLOW_WORKSPACE_ID": "aaa"})
    assert first == rerun == "circleci-aaa"


def test_same_number_on_two_cis_gives_two_ids() -> None:
    assert detect_run_id({"GITHUB_RUN_ID": "42"}) != detect_run_id({"CI_PIPELINE_ID": "42"})


def test_run_id_order() -> None:
    env = {
        "BUILD_BUILDID": "5",
        "BUILDKITE_BUILD_ID": "4",
        "CIRCLE_WORKFLOW_ID": "3",
        "CI_PIPELINE_ID": "2",
        "GITHUB_RUN_ID": "1",
    }
    assert detect_run_id(env) == "github-1"
    del env["GITHUB_RUN_ID"]
    assert detect_run_id(env) == "gitlab-2"
    del env["CI_PIPELINE_ID"]
    assert detect_run_id(env) == "circleci-3"
    del env["CIRCLE_WORKFLOW_ID"]
    assert detect_run_id(env) == "buildkite-4"
    del env["BUILDKITE_BUILD_ID"]
    assert detect_run_id(env) == "azure-5"
    env["GITHUB_RUN_ID"] = ""  # empty counts as unset
    assert detect_run_id(env) == "azure-5"


def test_no_run_id_names_every_variable() -> None:
    with pytest.raises(CIDetectionError) as info:
        detect_run_id({"CI": "true", "GITHUB_RUN_ATTEMPT": "2"})
    message = str(info.value)
    assert message.startswith("--resume-id auto: no CI run id variable found; looked for ")
    for name in (
        "GITHUB_RUN_ID (GitHub Actions)",
        "CI_PIPELINE_ID (GitLab)",
        "CIRCLE_WORKFLOW_WORKSPACE_ID/CIRCLE_WORKFLOW_ID (CircleCI)",
        "BUILDKITE_BUILD_ID (Buildkite)",
        "BUILD_BUILDID (Azure Pipelines)",
    ):
        assert name in message
    assert message.endswith("; pass --resume-id ID")


@pytest.mark.parametrize("value", ["12 34", "../../etc", "-1", "a\x1b[0m", "x" * 129, "é"])
def test_malformed_run_id(value: str) -> None:
    with pytest.raises(CIDetectionError) as info:
        detect_run_id({"GITHUB_RUN_ID": value})
    message = str(info.value)
    assert message.startswith("--resume-id auto: GITHUB_RUN_ID=")
    assert "is not a CI run id" in message
    assert "\n" not in message
    assert "\x1b" not in message
    assert len(message) < 200


@_relaxed
@given(st.dictionaries(st.sampled_from(["GITHUB_RUN_ID", "CI_PIPELINE_ID"]), st.text(max_size=20)))
def test_property_run_id_or_clear_error(env: dict[str, str]) -> None:
    run_id = ""
    message = ""
    try:
        run_id = detect_run_id(env)
    except CIDetectionError as exc:
        message = str(exc)
    if message:
        assert message.startswith("--resume-id auto: ")
        assert "\n" not in message
    else:
        prefix, _, rest = run_id.partition("-")
        assert prefix in {"github", "gitlab"}
        assert rest
        assert rest.isascii()
        assert rest.isprintable()
