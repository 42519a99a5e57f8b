"""Django's LOGGING_CONFIG hook: sets up logs and the trace scrubber in every process.

It lives apart from `hcoint.logging` and `hcoint.tracing` so that neither needs the
other: both take their patient-data rules from `hcoint.phi`, and this module is the
one place that wires them together.
"""

import logging
import logging.config

from hcoint import tracing


def configure_observability(config):
    """Apply LOGGING, then install the trace scrubber when ddtrace is running.

    Runs once in every process Django sets up (web, worker, management commands), which
    is why the scrubber is installed here: it is the one place they all pass through.
    """
    logging.config.dictConfig(config)
    # Python warnings (a UserWarning from a library, say) otherwise print plain text on
    # stderr; through the `py.warnings` logger they are JSON lines like the rest.
    logging.captureWarnings(True)
    tracing.install()
