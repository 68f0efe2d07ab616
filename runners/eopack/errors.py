"""One error hierarchy for the CLI and runners; messages are built from attributes tests can check."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EopackError",
    "GatewayInputsError",
    "JobInvalidError",
    "PackageInvalidError",
    "PackageNotFoundError",
    "RunFailedError",
    "ServiceUnavailableError",
    "SettingInvalidError",
    "UnknownRunnerError",
]


class EopackError(Exception):
    """Base class; ``str(err)`` is one line that says what is wrong and what to do."""

    exit_code = 1


class PackageNotFoundError(EopackError):
    exit_code = 2

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name, self.available = name, list(available)
        super().__init__(
            f"No application package {name!r}: expected app-packages/{name}/{name}.cwl or a path to a .cwl "
            f"file. Available: {', '.join(self.available) or 'none'}."
        )


class JobInvalidError(EopackError):
    exit_code = 2

    def __init__(self, path: object, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"Job file {path} {reason}; it must be a YAML mapping of input ids to values.")


class PackageInvalidError(EopackError):
    def __init__(self, app: str, problems: Sequence[str]) -> None:
        self.app, self.problems = app, list(problems)
        super().__init__(f"Package {app!r} is invalid: {'; '.join(self.problems)}")


class UnknownRunnerError(EopackError):
    exit_code = 2

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name, self.available = name, list(available)
        super().__init__(f"Unknown runner {name!r}. Use one of: {', '.join(self.available)}.")


class RunFailedError(EopackError):
    """A run ended without success (``eopack run`` raises it after printing the tool's error lines)."""

    def __init__(self, app: str, runner: str, exit_code: int, status: str, log: object = None) -> None:
        self.app, self.runner, self.status, self.log = app, runner, status, log
        self.exit_code = exit_code or 1
        where = f"; log: {log}" if log else ""
        super().__init__(f"{app} {status} on {runner} (exit {self.exit_code}){where}")


class ServiceUnavailableError(EopackError):
    def __init__(self, service: str, reason: str, fix: str) -> None:
        self.service, self.reason, self.fix = service, reason, fix
        super().__init__(f"{service} is not available: {reason}. {fix}")


class SettingInvalidError(EopackError):
    """An environment setting the user gave is malformed (exit 2: the user's to fix)."""

    exit_code = 2

    def __init__(self, name: str, reason: str, fix: str) -> None:
        self.name, self.reason, self.fix = name, reason, fix
        super().__init__(f"{name} {reason}. {fix}")


class GatewayInputsError(EopackError):
    """A containerised Dask run on a gateway with local input files: its workers cannot read them."""

    exit_code = 2

    def __init__(self, app: str, input_id: str, kind: str, location: str, why: str = "") -> None:
        self.app, self.input_id, self.kind, self.location = app, input_id, kind, location
        super().__init__(
            f"{app} on a Dask gateway with its container image: input {input_id!r} is a local {kind} "
            f"({location}) "
            + (
                why + "."
                if why
                else "that the gateway's workers cannot read where the container stages it. "
                "Give the data by URL (a STAC API: the job's stac_api; `eopack stac up` serves a folder), "
                "add --no-container (workers then read the host path), or set EOPACK_SHARED_FS=1 if "
                "the gateway's workers see this machine's files at the same paths."
            )
        )
