"""Every HTTP call HCOINT makes to Redox. Interface stub; the delivery issue fills it in."""

from dataclasses import dataclass, field


class RedoxError(Exception):
    """A failed Redox call. `retryable` says whether trying again later can help."""

    def __init__(self, message, *, retryable, status=None, retry_after=None, redox_errors=()):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.redox_errors = list(redox_errors)


@dataclass(frozen=True)
class SendResult:
    status: int
    log_ids: list = field(default_factory=list)

    @property
    def log_id(self):
        return self.log_ids[0] if self.log_ids else ""


class RedoxClient:
    def send(self, message):
        """POST a data-model message to /endpoint. Returns SendResult or raises RedoxError."""
        raise NotImplementedError

    def upload_file(self, content, file_name):
        """Upload a file to the blob endpoint; returns the URI to reference in a message."""
        raise NotImplementedError


def get_client():
    """The process-wide client configured from settings."""
    raise NotImplementedError
