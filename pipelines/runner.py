"""The one place a stage's Beam pipeline is made: on the runner the options name, and without a runner named,
on the DirectRunner's batch engine in this process, never on a binary fetched at run time.

Beam's DirectRunner (2.78, the version locked here) first tries the Prism runner, which it downloads from
GitHub when the machine can reach it, and falls back to its own batch engine (the FnApiRunner) only when that
fails. So the same command ran on two different engines depending on the network, with other memory, worker
and start-up behaviour, and fetched a binary at run time. Here no `--runner`, or `--runner DirectRunner`,
runs the FnApiRunner exactly as the DirectRunner configures it after that attempt (its options reach the
workers, `--direct_num_workers` and `--direct_running_mode` apply); `--runner PrismRunner` still runs Prism
for whoever wants it.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

DIRECT_NAMES = (None, "DirectRunner", "SwitchingDirectRunner")


def local_runner(options: PipelineOptions):
    """The FnApiRunner set up as the DirectRunner sets it up, or None when the options name another runner."""
    if options.view_as(StandardOptions).runner not in DIRECT_NAMES:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(info))


def new_pipeline(beam_args: list[str]) -> beam.Pipeline:
    """A pipeline for the Beam options in `beam_args` (see the module's docstring for the default runner)."""
    options = PipelineOptions(beam_args)
    return beam.Pipeline(runner=local_runner(options), options=options)
