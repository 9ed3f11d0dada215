"""Bulk API 2.0 query jobs: create, poll, abort, delete, and CSV results paged by locator."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce._http import (
    SalesforceRoutes,
)
from connectors.sandbox.salesforce.query import (
    QueryOrg,
    _Compiled,
)
from connectors.sandbox.salesforce.schema import (
    FieldDef,
    to_18,
)
from connectors.sandbox.salesforce.store import (
    BULK_DEFAULT_PAGE,
    SalesforceError,
    _locator_offset,
    _locator_text,
)


@dataclass(slots=True)
class BulkJob:
    """A Bulk API 2.0 query job; its result is computed when created (a snapshot), state follows time."""

    id: str
    operation: str
    object: str
    query: str
    api_version: str
    created_date: str
    created_at: float
    delay_s: float
    column_delimiter: str
    line_ending: str
    compiled: _Compiled | None
    aborted: bool = False
    failed_message: str | None = None
    stamp: str = ""

    def state(self, now: float) -> str:
        if self.aborted:
            return "Aborted"
        if self.failed_message is not None:
            return "Failed"
        elapsed = now - self.created_at
        if elapsed >= self.delay_s:
            return "JobComplete"
        return "UploadComplete" if elapsed < self.delay_s / 2 else "InProgress"

    def info(self, now: float, created_by: str) -> dict[str, Any]:
        state = self.state(now)
        done = state == "JobComplete"
        count = len(self.compiled.rows) if (self.compiled and done) else 0
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": created_by,
            "createdDate": self.created_date,
            "systemModstamp": self.stamp or self.created_date,
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "jobType": "V2Query",
            "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter,
            "numberRecordsProcessed": count,
            "retries": 0,
            "totalProcessingTime": int(min(now - self.created_at, self.delay_s) * 1000) if done else 0,
            "isPkChunkingSupported": True,
        }
        if self.failed_message is not None:
            body["errorMessage"] = self.failed_message
        return body


_DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
_LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}


class BulkOrg(QueryOrg):
    """Query jobs over the same compiled SOQL as the REST query."""

    def create_query_job(self, body: Mapping[str, Any], version: str) -> BulkJob:
        with self.lock:
            operation = body.get("operation")
            query = body.get("query")
            if operation not in ("query", "queryAll"):
                raise SalesforceError(400, "INVALIDJOB", f"Invalid operation for a query job: {operation}")
            if not isinstance(query, str) or not query.strip():
                raise SalesforceError(400, "INVALIDJOB", "A query job needs a query")
            delimiter = str(body.get("columnDelimiter") or "COMMA")
            line_ending = str(body.get("lineEnding") or "LF")
            if delimiter not in _DELIMITERS or line_ending not in _LINE_ENDINGS:
                raise SalesforceError(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
            if body.get("contentType", "CSV") != "CSV":
                raise SalesforceError(400, "INVALIDJOB", "Only CSV is supported for query jobs")
            compiled = self.compile_and_run(query, include_deleted=operation == "queryAll", bulk=True)
            created = self.tick()
            job = BulkJob(
                id=self.new_id("Job"),
                operation=operation,
                object=compiled.table.obj.name,
                query=query,
                api_version=version,
                created_date=created,
                created_at=time.monotonic(),
                delay_s=self.bulk_job_delay_s,
                column_delimiter=delimiter,
                line_ending=line_ending,
                compiled=compiled,
            )
            self._jobs[job.id] = job
            return job

    def job(self, job_id: str) -> BulkJob:
        with self.lock:
            job = self._jobs.get(to_18(job_id) or "")
            if job is None:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            return job

    def jobs(self) -> list[BulkJob]:
        with self.lock:
            return list(self._jobs.values())

    def abort_job(self, job_id: str) -> BulkJob:
        with self.lock:
            job = self.job(job_id)
            state = job.state(time.monotonic())
            if state in ("JobComplete", "Failed", "Aborted"):
                raise SalesforceError(400, "INVALIDJOB", f"Aborting already {state} Job not allowed")
            job.aborted = True
            job.stamp = self.tick()
            job.compiled = None
            return job

    def delete_job(self, job_id: str) -> None:
        with self.lock:
            job = self.job(job_id)
            if job.state(time.monotonic()) in ("UploadComplete", "InProgress"):
                raise SalesforceError(400, "INVALIDJOB", "Cannot delete a job that is in progress; abort it first")
            del self._jobs[job.id]

    def job_results(
        self, job_id: str, *, locator: str | None, max_records: int | None, version: str
    ) -> tuple[str, int, str]:
        """A results page: (CSV text, number of records, next locator or ``"null"``)."""
        with self.lock:
            job = self.job(job_id)
            if job.api_version != version:
                raise SalesforceError(
                    409, "INVALIDJOB", f"Job {job.id} was created with API version {job.api_version}, not {version}"
                )
            state = job.state(time.monotonic())
            if state != "JobComplete" or job.compiled is None:
                raise SalesforceError(400, "INVALIDJOB", f"Job {job.id} is not complete (state {state})")
            offset = 0
            if locator:
                parsed = _locator_offset(locator)
                if parsed is None:
                    raise SalesforceError(400, "INVALIDLOCATOR", f"Invalid locator: {locator}")
                offset = parsed
            size = BULK_DEFAULT_PAGE if max_records is None else max_records
            if size <= 0:
                raise SalesforceError(400, "INVALIDJOB", "maxRecords must be a positive integer")
            rows = job.compiled.rows[offset : offset + size]
            end = offset + len(rows)
            next_locator = _locator_text(end) if end < len(job.compiled.rows) else "null"
            return self._csv(job, rows), len(rows), next_locator

    def _csv(self, job: BulkJob, rows: Sequence[list[Any]]) -> str:
        assert job.compiled is not None
        columns = job.compiled.columns
        out = io.StringIO()
        writer = csv.writer(
            out,
            delimiter=_DELIMITERS[job.column_delimiter],
            lineterminator=_LINE_ENDINGS[job.line_ending],
            quoting=csv.QUOTE_ALL,
        )
        writer.writerow([c.name for c in columns])
        formatters = [_csv_formatter(c.field) for c in columns]
        getters = [c.get for c in columns]
        for row in rows:
            writer.writerow([fmt(get(row)) for fmt, get in zip(formatters, getters, strict=True)])
        return out.getvalue()


def _csv_formatter(fd: FieldDef) -> Callable[[Any], str]:
    if fd.type == "datetime":
        return lambda v: "" if v is None else v[:23] + "Z"
    if fd.type == "boolean":
        return lambda v: "" if v is None else ("true" if v else "false")
    return lambda v: "" if v is None else str(v)


class BulkRoutes(SalesforceRoutes):
    """``/jobs/query``."""

    def _job_info(self, job: BulkJob) -> dict[str, Any]:
        return job.info(time.monotonic(), self.org.integration_user_id)

    def _create_job(self, request: Request, version: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        job = self.org.create_query_job(body, version)
        info = self._job_info(job)
        info["state"] = "UploadComplete"  # the creation answer always says so; polling moves on
        info["numberRecordsProcessed"] = 0
        return json_response(info)

    def _list_jobs(self, request: Request, version: str) -> Response:
        return json_response(
            {"done": True, "records": [self._job_info(j) for j in self.org.jobs()], "nextRecordsUrl": None}
        )

    def _get_job(self, request: Request, version: str, job_id: str) -> Response:
        return json_response(self._job_info(self.org.job(job_id)))

    def _patch_job(self, request: Request, version: str, job_id: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict) or body.get("state") != "Aborted":
            raise SalesforceError(400, "INVALIDJOB", "A query job can only be changed to state Aborted")
        return json_response(self._job_info(self.org.abort_job(job_id)))

    def _delete_job(self, request: Request, version: str, job_id: str) -> Response:
        self.org.delete_job(job_id)
        return Response(status=204)

    def _job_results(self, request: Request, version: str, job_id: str) -> Response:
        max_records = request.args.get("maxRecords")
        if max_records is not None and not max_records.strip().isdigit():
            raise SalesforceError(400, "INVALIDJOB", "maxRecords must be a positive integer")
        text, count, locator = self.org.job_results(
            job_id,
            locator=request.args.get("locator") or None,
            max_records=int(max_records) if max_records is not None else None,
            version=version,
        )
        return Response(
            text,
            status=200,
            content_type="text/csv; charset=UTF-8",
            headers={"Sforce-NumberOfRecords": str(count), "Sforce-Locator": locator},
        )
