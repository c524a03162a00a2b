"""Without --runner, a stage runs on the DirectRunner's batch engine in this process and never tries Prism
(which Beam's DirectRunner downloads from GitHub when it can); the DirectRunner's options still apply."""

from __future__ import annotations

import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability import prism_runner
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to

from pipelines.runner import local_runner, new_pipeline


@pytest.fixture
def prism_calls(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *args: calls.append(args))
    return calls


@pytest.mark.parametrize("args", [[], ["--runner=DirectRunner"], ["--runner", "DirectRunner"]])
def test_no_runner_or_the_direct_runner_runs_in_process_without_prism(args, prism_calls) -> None:
    pipeline = new_pipeline(args)
    assert isinstance(pipeline.runner, fn_runner.FnApiRunner)
    pids = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda _: os.getpid()) | beam.Distinct()
    assert_that(pids, equal_to([os.getpid()]))
    pipeline.run().wait_until_finish()
    assert prism_calls == []


def test_direct_options_reach_the_engine(prism_calls) -> None:
    """--direct_running_mode=multi_processing still starts worker processes."""
    here = os.getpid()  # read now: the lambdas run in the worker
    pipeline = new_pipeline(["--direct_num_workers=1", "--direct_running_mode=multi_processing"])
    pids = pipeline | beam.Create([1, 2, 3]) | beam.Map(lambda _: os.getpid()) | beam.Distinct()
    assert_that(pids | beam.Map(lambda pid, parent=here: pid != parent), equal_to([True]))
    pipeline.run().wait_until_finish()
    assert prism_calls == []


@pytest.mark.parametrize("name", ["PrismRunner", "PortableRunner", "DataflowRunner"])
def test_a_named_runner_is_left_to_beam(name) -> None:
    assert local_runner(PipelineOptions([f"--runner={name}"])) is None
