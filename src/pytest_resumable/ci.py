"""CI conventions for ``--shard auto`` and ``--resume-id auto`` (SPEC §6). Pure functions of an
environment mapping; no pytest import, so callers turn :class:`CIDetectionError` into a usage
error themselves.

What each CI sets, and what this module reads (index base in brackets):

- GitHub Actions: no shard variables (matrix jobs have no index); run id ``GITHUB_RUN_ID``.
- GitLab CI: ``CI_NODE_INDEX`` [1] / ``CI_NODE_TOTAL``; run id ``CI_PIPELINE_ID``.
- CircleCI: ``CIRCLE_NODE_INDEX`` [0] / ``CIRCLE_NODE_TOTAL``; run id
  ``CIRCLE_WORKFLOW_WORKSPACE_ID``, else ``CIRCLE_WORKFLOW_ID``.
- Buildkite: ``BUILDKITE_PARALLEL_JOB`` [0] / ``BUILDKITE_PARALLEL_JOB_COUNT``; run id
  ``BUILDKITE_BUILD_ID``.
- Azure Pipelines: ``SYSTEM_JOBPOSITIONINPHASE`` [1] / ``SYSTEM_TOTALJOBSINPHASE``; run id
  ``BUILD_BUILDID``.

A variable set to an empty (or all-blank) value counts as not set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: the highest shard total accepted, as for ``--shard K/N``
MAX_SHARDS = 10000

_INT = re.compile(r"[0-9]+")
# Ids are numbers (GitHub, GitLab, Azure) or UUIDs (CircleCI, Buildkite); anything else is not
# what the CI sets, and a run id ends up in the journal and on the terminal.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class CIDetectionError(ValueError):
    """``auto`` could not be resolved from the environment; the message is one line that names
    the option and the variables involved."""


@dataclass(frozen=True)
class _ShardVars:
    ci: str
    index: str
    total: str
    base: int  # what the CI's first shard's index is: 0 or 1
    marker: str | None = None  # a variable that must equal "true" (case-insensitive)


# Vendor-prefixed pairs first: only their own CI sets them. CI_NODE_INDEX/CI_NODE_TOTAL are
# generic names that Heroku CI sets 0-based and knapsack-style tools export by hand, so GitLab's
# 1-based reading of them is taken only when GITLAB_CI says the job runs on GitLab.
_SHARD_VARS = (
    _ShardVars("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    _ShardVars("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    _ShardVars("Azure Pipelines", "SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE", 1),
    _ShardVars("GitLab", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1, marker="GITLAB_CI"),
)

# (CI, prefix of the id, variables in order of preference)
_RUN_ID_VARS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("GitHub Actions", "github", ("GITHUB_RUN_ID",)),
    ("GitLab", "gitlab", ("CI_PIPELINE_ID",)),
    ("CircleCI", "circleci", ("CIRCLE_WORKFLOW_WORKSPACE_ID", "CIRCLE_WORKFLOW_ID")),
    ("Buildkite", "buildkite", ("BUILDKITE_BUILD_ID",)),
    ("Azure Pipelines", "azure", ("BUILD_BUILDID",)),
)

_SHARD_OPTION = "--shard auto"
_RUN_ID_OPTION = "--resume-id auto"


def detect_shard(env: Mapping[str, str]) -> tuple[int, int]:
    """The shard ``(K, N)`` of this CI job, K 1-based, from the first CI whose pair is complete.

    Order: CircleCI (``CIRCLE_NODE_INDEX``/``CIRCLE_NODE_TOTAL``, index 0-based), Buildkite
    (``BUILDKITE_PARALLEL_JOB``/``BUILDKITE_PARALLEL_JOB_COUNT``, 0-based), Azure Pipelines
    (``SYSTEM_JOBPOSITIONINPHASE``/``SYSTEM_TOTALJOBSINPHASE``, 1-based), then GitLab
    (``CI_NODE_INDEX``/``CI_NODE_TOTAL``, 1-based), which is read only when ``GITLAB_CI`` is
    ``true``: the same names are set 0-based by Heroku CI. GitLab sets ``CI_NODE_INDEX`` only in
    jobs with ``parallel:`` (``parallel: matrix:`` included) and ``CI_NODE_TOTAL=1`` in other
    jobs, which is read as shard 1/1. A CI whose pair is only half set is skipped.

    The first complete pair decides: when its values are malformed (not a decimal integer, index
    outside the total, total above :data:`MAX_SHARDS`) this raises rather than trying the next CI.
    Raises :class:`CIDetectionError` when no pair is found, naming every variable looked for.
    """
    notes: list[str] = []
    for spec in _SHARD_VARS:
        index, total = _get(env, spec.index), _get(env, spec.total)
        if spec.marker is not None and _get(env, spec.marker).lower() != "true":
            if index or total:
                notes.append(f"{spec.index}/{spec.total} ignored without {spec.marker}=true")
            continue
        if spec.marker is not None and not index and total == "1":
            return 1, 1  # a GitLab job without parallel:
        if index and total:
            return _shard_from(spec, index, total)
        if index or total:
            present, missing = (spec.index, spec.total) if index else (spec.total, spec.index)
            notes.append(f"{present} without {missing}")
    looked_for = ", ".join(
        f"{s.index}/{s.total} ({s.ci}{', with ' + s.marker + '=true' if s.marker else ''})"
        for s in _SHARD_VARS
    )
    found = f" ({'; '.join(notes)})" if notes else ""
    raise CIDetectionError(
        f"{_SHARD_OPTION}: no CI shard variables found{found}; looked for {looked_for}; "
        f"pass --shard K/N"
    )


def detect_run_id(env: Mapping[str, str]) -> str:
    """The id of this CI pipeline/workflow run, prefixed with the CI's name: ``github-123456``.

    Order: GitHub ``GITHUB_RUN_ID``, GitLab ``CI_PIPELINE_ID``, CircleCI
    ``CIRCLE_WORKFLOW_WORKSPACE_ID`` (else ``CIRCLE_WORKFLOW_ID``), Buildkite
    ``BUILDKITE_BUILD_ID``, Azure Pipelines ``BUILD_BUILDID``; the first one set wins.

    Each is the id that a retried job keeps, so a retry continues the same run: a GitHub
    re-run keeps ``GITHUB_RUN_ID`` and bumps ``GITHUB_RUN_ATTEMPT``, which is deliberately left
    out. CircleCI gives a rerun workflow a new ``CIRCLE_WORKFLOW_ID`` but keeps
    ``CIRCLE_WORKFLOW_WORKSPACE_ID``, hence the preference. The prefix keeps ids of two CIs
    apart.

    Raises :class:`CIDetectionError` when none is set, or when the value is not a plain id
    (letters, digits, ``.``, ``_``, ``-``; at most 128 characters).
    """
    for _ci, prefix, names in _RUN_ID_VARS:
        for name in names:
            value = _get(env, name)
            if not value:
                continue
            if not _RUN_ID.fullmatch(value):
                raise CIDetectionError(
                    f"{_RUN_ID_OPTION}: {name}={_show(value)} is not a CI run id "
                    f"(expected letters, digits, '.', '_', '-', at most 128); "
                    f"pass --resume-id ID"
                )
            return f"{prefix}-{value}"
    looked_for = ", ".join(f"{'/'.join(names)} ({ci})" for ci, _p, names in _RUN_ID_VARS)
    raise CIDetectionError(
        f"{_RUN_ID_OPTION}: no CI run id variable found; looked for {looked_for}; "
        f"pass --resume-id ID"
    )


def _get(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _show(value: str) -> str:
    """``value`` quoted, control characters escaped, cut short: safe in a one-line message."""
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "..."


def _shard_from(spec: _ShardVars, index_text: str, total_text: str) -> tuple[int, int]:
    where = f"{spec.ci}, {spec.base}-based"
    index = _int(spec.index, index_text, where)
    total = _int(spec.total, total_text, where)
    if not 1 <= total <= MAX_SHARDS:
        raise CIDetectionError(
            f"{_SHARD_OPTION}: {spec.total}={_show(total_text)} ({spec.ci}) is out of range: "
            f"expected 1..{MAX_SHARDS}; pass --shard K/N"
        )
    first, last = spec.base, total - 1 + spec.base
    if not first <= index <= last:
        raise CIDetectionError(
            f"{_SHARD_OPTION}: {spec.index}={_show(index_text)} is out of range for "
            f"{spec.total}={_show(total_text)} ({where}: expected {first}..{last}); "
            f"pass --shard K/N"
        )
    return index - spec.base + 1, total


def _int(name: str, text: str, where: str) -> int:
    try:
        if _INT.fullmatch(text):
            return int(text)
    except ValueError:  # more digits than int() converts
        pass
    raise CIDetectionError(
        f"{_SHARD_OPTION}: {name}={_show(text)} ({where}) is not a non-negative integer; "
        f"pass --shard K/N"
    )
