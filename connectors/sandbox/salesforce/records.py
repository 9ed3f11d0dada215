"""CRM records: create, read, update, delete one record, sObject Collections, and lead conversion."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce._http import (
    SalesforceRoutes,
)
from connectors.sandbox.salesforce.coerce import coerce_value
from connectors.sandbox.salesforce.schema import (
    FieldDef,
    RecordError,
    derive_stage_flags,
    to_18,
)
from connectors.sandbox.salesforce.store import (
    COLLECTION_MAX_RECORDS,
    CREATED,
    CREATED_BY,
    ID,
    IS_DELETED,
    MODIFIED,
    MODIFIED_BY,
    STAMP,
    OrgStore,
    SalesforceError,
    Table,
)


class RecordsOrg(OrgStore):
    """Writes with Salesforce's coercion, validation rules and per-record errors."""

    def _check_write(
        self, table: Table, values: Mapping[str, Any], current: list[Any] | None
    ) -> tuple[list[Any] | None, list[RecordError]]:
        """The new row for a create (``current`` None) or update, or the per-record errors.

        :raises WriteRejected: a value JSON cannot bind (the whole request fails).
        """
        obj = table.obj
        errors: list[RecordError] = []
        changes: dict[int, Any] = {}
        for key, raw in values.items():
            if key == "attributes" or (current is not None and key in ("id", "Id")):
                continue
            fd = obj.field(key)
            if fd is None:
                errors.append(RecordError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}"))
                continue
            value, error = coerce_value(fd, raw)
            if not (fd.updateable if current is not None else fd.createable):
                errors.append(
                    RecordError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {fd.name}. Please check the security settings of this field "
                        "and verify that it is read/write for your profile or permission set.",
                        (fd.name,),
                    )
                )
                continue
            if error is not None:
                errors.append(error)
                continue
            if fd.type == "reference" and value is not None:
                target = self._by_prefix.get(value[:3])
                parent = target.rows.get(value) if target is not None else None
                if parent is None or parent[IS_DELETED]:
                    errors.append(
                        RecordError(
                            "INVALID_CROSS_REFERENCE_KEY",
                            f"{fd.label}: id value of incorrect type: {value}",
                            (fd.name,),
                        )
                    )
                    continue
            changes[fd.index] = value
        if errors:
            return None, errors
        row: list[Any]
        if current is None:
            row = [None] * obj.width
            for fd in obj.fields:
                if fd.default_value is not None:
                    row[fd.index] = fd.default_value
            row[IS_DELETED] = False
            owner = obj.field("OwnerId")
            if owner is not None:
                row[owner.index] = self.integration_user_id
        else:
            row = list(current)
            while len(row) < obj.width:
                row.append(None)
        for index, value in changes.items():
            row[index] = value
        missing = [name for name in obj.required if row[obj.by_lower[name.lower()].index] is None]
        if missing:
            return None, [
                RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", tuple(missing)
                )
            ]
        name_fd = obj.field("Name")
        first, last = obj.field("FirstName"), obj.field("LastName")
        if name_fd is not None and first is not None and last is not None and not name_fd.updateable:
            row[name_fd.index] = " ".join(x for x in (row[first.index], row[last.index]) if x)
        derive_stage_flags(obj, row, created=current is None)
        for rule in self._rules:
            if rule.sobject == obj.name and rule.predicate(row):
                fields = (rule.field,) if rule.field else ()
                errors.append(RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, fields))
        if errors:
            return None, errors
        return row, []

    def _target(self, table: Table, raw_id: Any) -> tuple[str | None, list[Any] | None, RecordError | None]:
        """Look up the record a write names: (id, current row, error)."""
        obj = table.obj
        if raw_id is None or raw_id == "":
            return None, None, RecordError("MISSING_ARGUMENT", "Id not specified in an update call")
        full = to_18(str(raw_id)) if isinstance(raw_id, str) else None
        if full is None or full[:3] != obj.key_prefix:
            return (
                None,
                None,
                RecordError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {raw_id}", ("Id",)),
            )
        row = table.rows.get(full)
        if row is None:
            return full, None, RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        if row[IS_DELETED]:
            return full, None, RecordError("ENTITY_IS_DELETED", "entity is deleted")
        if obj.name == "Lead" and row[obj.by_lower["isconverted"].index]:
            return full, None, RecordError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")
        return full, row, None

    def _commit(self, table: Table, row: list[Any], stamp: str, *, created: bool) -> None:
        row[MODIFIED] = row[STAMP] = stamp
        row[MODIFIED_BY] = self.integration_user_id
        if created:
            row[CREATED] = stamp
            row[CREATED_BY] = self.integration_user_id
            table.insert(row)
        else:
            table.replace(row)
        for listener in self.change_listeners:
            listener(table.obj.name, str(row[ID]), stamp)

    def update_collection(self, records: Any, *, all_or_none: bool) -> list[dict[str, Any]]:
        """``PATCH /composite/sobjects``: SaveResults in request order (per-record errors use ``statusCode``).

        :raises SalesforceError: 400 for a malformed request (not a list, > 200 records, no type).
        :raises WriteRejected: a value JSON cannot bind (the whole request fails, nothing is written).
        """
        with self.lock:
            items = self._collection_items(records)
            pending: dict[str, tuple[Table, list[Any]]] = {}
            outcomes: list[tuple[str | None, list[RecordError]]] = []
            for table, item in items:
                full, current, error = self._target(table, item.get("id", item.get("Id")))
                if error is not None:
                    outcomes.append((full if error.status_code != "MALFORMED_ID" else None, [error]))
                    continue
                assert full is not None and current is not None
                if full in pending:
                    current = pending[full][1]
                row, errors = self._check_write(table, item, current)
                if row is None:
                    outcomes.append((full, errors))
                    continue
                pending[full] = (table, row)
                outcomes.append((full, []))
            return self._finish(outcomes, pending, all_or_none, created=False)

    def create_collection(self, records: Any, *, all_or_none: bool) -> list[dict[str, Any]]:
        """``POST /composite/sobjects``: create up to 200 records (no ``id`` allowed)."""
        with self.lock:
            items = self._collection_items(records)
            pending: dict[str, tuple[Table, list[Any]]] = {}
            outcomes: list[tuple[str | None, list[RecordError]]] = []
            for table, item in items:
                if item.get("id") or item.get("Id"):
                    outcomes.append(
                        (None, [RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))])
                    )
                    continue
                self._check_creatable(table)
                row, errors = self._check_write(table, item, None)
                if row is None:
                    outcomes.append((None, errors))
                    continue
                rid = self.new_id(table.obj.name)
                row[ID] = rid
                pending[rid] = (table, row)
                outcomes.append((rid, []))
            return self._finish(outcomes, pending, all_or_none, created=True)

    def _collection_items(self, records: Any) -> list[tuple[Table, Mapping[str, Any]]]:
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "records must be an array of sObjects")
        if len(records) > COLLECTION_MAX_RECORDS:
            raise SalesforceError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_MAX_RECORDS} records into this call",
            )
        items: list[tuple[Table, Mapping[str, Any]]] = []
        for record in records:
            attributes = record.get("attributes")
            sobject = attributes.get("type") if isinstance(attributes, dict) else None
            table = self._by_lower.get(str(sobject).lower()) if sobject else None
            if table is None:
                raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            self.table(table.obj.name)
            items.append((table, record))
        # values JSON cannot bind fail the request before anything is looked up (Salesforce parses first)
        for table, record in items:
            for key, raw in record.items():
                fd = table.obj.field(key) if key not in ("attributes", "id", "Id") else None
                if fd is not None:
                    coerce_value(fd, raw)
        return items

    def _finish(
        self,
        outcomes: list[tuple[str | None, list[RecordError]]],
        pending: Mapping[str, tuple[Table, list[Any]]],
        all_or_none: bool,
        *,
        created: bool,
    ) -> list[dict[str, Any]]:
        failed = any(errors for _id, errors in outcomes)
        if failed and all_or_none:
            rolled = RecordError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
            )
            results = []
            for rid, errors in outcomes:
                item: dict[str, Any] = {"success": False, "errors": [e.as_save_error() for e in errors or [rolled]]}
                if rid is not None and not created:
                    item = {"id": rid, **item}
                results.append(item)
            return results
        if pending:
            stamp = self.tick()
            for table, row in pending.values():
                self._commit(table, row, stamp, created=created)
        results = []
        for rid, errors in outcomes:
            if errors:
                item = {"success": False, "errors": [e.as_save_error() for e in errors]}
                if rid is not None and not created:
                    item = {"id": rid, **item}
                results.append(item)
            else:
                results.append({"id": rid, "success": True, "errors": []})
        return results

    def _check_creatable(self, table: Table) -> None:
        if not table.obj.createable:
            raise SalesforceError(
                400, "INVALID_TYPE_FOR_OPERATION", f"entity type {table.obj.name} does not support insert"
            )

    def update_record(self, sobject: str, record_id: str, values: Mapping[str, Any]) -> None:
        """``PATCH /sobjects/{Type}/{id}`` (204 on success).

        :raises SalesforceError: 404 for an unknown id, 400 with the record's errors otherwise.
        """
        with self.lock:
            table = self.table(sobject)
            for key, raw in values.items():
                fd = table.obj.field(key)
                if fd is not None:
                    coerce_value(fd, raw)
            _full, current, error = self._target(table, record_id)
            if error is not None:
                if error.status_code == "MALFORMED_ID":
                    raise SalesforceError(
                        404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {record_id}"
                    )
                if error.status_code == "INVALID_CROSS_REFERENCE_KEY":
                    raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
                status = 404 if error.status_code == "ENTITY_IS_DELETED" else 400
                raise SalesforceError(status, error.status_code, error.message, error.fields)
            assert current is not None
            row, errors = self._check_write(table, values, current)
            if row is None:
                first = errors[0]
                raise SalesforceError(400, first.status_code, first.message, first.fields)
            self._commit(table, row, self.tick(), created=False)

    def create_record(self, sobject: str, values: Mapping[str, Any]) -> str:
        """``POST /sobjects/{Type}``; returns the new id."""
        with self.lock:
            table = self.table(sobject)
            self._check_creatable(table)
            for key, raw in values.items():
                fd = table.obj.field(key)
                if fd is not None:
                    coerce_value(fd, raw)
            if "Id" in values or "id" in values:
                raise SalesforceError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
            row, errors = self._check_write(table, values, None)
            if row is None:
                first = errors[0]
                raise SalesforceError(400, first.status_code, first.message, first.fields)
            row[ID] = self.new_id(table.obj.name)
            self._commit(table, row, self.tick(), created=True)
            return str(row[ID])

    def delete_record(self, sobject: str, record_id: str) -> None:
        """Soft delete: ``IsDeleted`` true, gone from ``query``, still in ``queryAll``."""
        with self.lock:
            table = self.table(sobject)
            full = to_18(record_id)
            row = table.rows.get(full) if full else None
            if row is None:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if row[IS_DELETED]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            new = list(row)
            new[IS_DELETED] = True
            self._commit(table, new, self.tick(), created=False)

    def read_record(self, sobject: str, record_id: str, fields: Sequence[str] | None, version: str) -> dict[str, Any]:
        """``GET /sobjects/{Type}/{id}[?fields=...]``."""
        with self.lock:
            table = self.table(sobject)
            full = to_18(record_id)
            row = table.rows.get(full) if full else None
            if row is None or (full or "")[:3] != table.obj.key_prefix:
                raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
            if row[IS_DELETED]:
                raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
            obj = table.obj
            chosen: list[FieldDef] = []
            for name in fields or [f.name for f in obj.live_fields]:
                fd = obj.field(name)
                if fd is None:
                    raise SalesforceError(
                        400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}"
                    )
                chosen.append(fd)
            body: dict[str, Any] = {
                "attributes": {"type": obj.name, "url": f"/services/data/v{version}/sobjects/{obj.name}/{row[ID]}"}
            }
            for fd in chosen:
                body[fd.name] = row[fd.index] if fd.index < len(row) else None
            return body

    def touch(self, sobject: str, ids: Iterable[str] | None = None, *, at: datetime | None = None) -> str:
        """A system process changes records: ``SystemModstamp`` only (not ``LastModifiedDate``), one
        identical stamp for all of them (default: now; ``at`` must not be in the future). Returns the stamp."""
        with self.lock:
            table = self.table(sobject)
            stamp = soql.normalize_datetime(at) if at is not None else self.tick()
            chosen = list(table.rows) if ids is None else [f for i in ids if (f := to_18(i)) and f in table.rows]
            for rid in chosen:
                new = list(table.rows[rid])
                new[STAMP] = stamp
                table.rows[rid] = new
            table.rebuild_index()
            return stamp

    def convert_lead(
        self,
        lead_id: str,
        *,
        account_id: str | None = None,
        opportunity_stage: str | None = None,
        close_date: str | None = None,
    ) -> tuple[str, str]:
        """Convert a lead the way the UI does: a Contact (and an Account unless given), status
        ``Closed - Converted``, its tasks and events moved to the contact. Returns (contact id, account id).

        With ``opportunity_stage`` it also creates the Opportunity (``ConvertedOpportunityId``, closing on
        ``close_date``, default today) with the contact as its primary OpportunityContactRole, as convertLead
        does unless told ``doNotCreateOpportunity``."""
        with self.lock:
            leads = self.table("Lead")
            self._ensure_activities()
            full, row, error = self._target(leads, lead_id)
            if error is not None or row is None:
                raise SalesforceError(400, error.status_code if error else "NOT_FOUND", error.message if error else "")
            obj = leads.obj
            lead = leads.as_dict(row)
            stamp = self.tick()
            if account_id is None:
                account_id = self.create_record(
                    "Account",
                    {
                        "Name": lead["Company"],
                        "Industry": lead["Industry"],
                        "NumberOfEmployees": lead["NumberOfEmployees"],
                        "AnnualRevenue": lead["AnnualRevenue"],
                        "BillingCountry": lead["Country"],
                        "Type": "Prospect",
                    },
                )
            contact_values = {
                k: lead[k]
                for k in (
                    "FirstName",
                    "LastName",
                    "Title",
                    "Email",
                    "LeadSource",
                    "HasOptedOutOfEmail",
                    "EmailBouncedReason",
                    "EmailBouncedDate",
                )
                if lead.get(k) is not None
            }
            contact_id = self.create_record(
                "Contact", {**contact_values, "AccountId": account_id, "MailingCountry": lead["Country"]}
            )
            opportunity_id = None
            if opportunity_stage is not None:
                opportunity_id = self.create_record(
                    "Opportunity",
                    {
                        "Name": f"{lead['Company']}-",
                        "AccountId": account_id,
                        "StageName": opportunity_stage,
                        "CloseDate": close_date or stamp[:10],
                        "LeadSource": lead["LeadSource"],
                        "Type": "New Business",
                    },
                )
                self.create_record(
                    "OpportunityContactRole",
                    {"OpportunityId": opportunity_id, "ContactId": contact_id, "IsPrimary": True},
                )
            new = list(row)
            for name, value in (
                ("ConvertedOpportunityId", opportunity_id),
                ("IsConverted", True),
                ("Status", "Closed - Converted"),
                ("ConvertedDate", stamp[:10]),
                ("ConvertedAccountId", account_id),
                ("ConvertedContactId", contact_id),
            ):
                new[obj.by_lower[name.lower()].index] = value
            self._commit(leads, new, stamp, created=False)
            for sobject in ("Task", "Event"):
                table = self.tables[sobject]
                who = table.obj.by_lower["whoid"].index
                for trow in list(table.rows.values()):
                    if trow[who] == full:
                        moved = list(trow)
                        moved[who] = contact_id
                        self._commit(table, moved, stamp, created=False)
            members = self.tables["CampaignMember"]
            lead_col, contact_col = members.obj.by_lower["leadid"].index, members.obj.by_lower["contactid"].index
            for mrow in list(members.rows.values()):
                if mrow[lead_col] == full:
                    moved = list(mrow)
                    moved[contact_col] = contact_id
                    self._commit(members, moved, stamp, created=False)
            return contact_id, account_id


class RecordsRoutes(SalesforceRoutes):
    """``/sobjects/{sobject}[/{id}]`` and ``/composite/sobjects``."""

    def _create(self, request: Request, version: str, sobject: str) -> Response:
        body = self._json(request)
        if sobject.endswith("__e"):
            event_id = self.org.publish_event(sobject, body)
            self.stats.increment("platform_events")
            return json_response({"id": event_id, "success": True, "errors": []}, 201)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        record_id = self.org.create_record(sobject, body)
        return json_response({"id": record_id, "success": True, "errors": []}, 201)

    def _read(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        fields = request.args.get("fields")
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        return json_response(self.org.read_record(sobject, record_id, names, version))

    def _update(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object")
        self.org.update_record(sobject, record_id, body)
        return Response(status=204)

    def _delete(self, request: Request, version: str, sobject: str, record_id: str) -> Response:
        self.org.delete_record(sobject, record_id)
        return Response(status=204)

    def _collection_body(self, request: Request) -> tuple[Any, bool]:
        body = self._json(request)
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "expected a JSON object with records")
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
        return body.get("records"), all_or_none

    def _collection_update(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_body(request)
        return json_response(self.org.update_collection(records, all_or_none=all_or_none))

    def _collection_create(self, request: Request, version: str) -> Response:
        records, all_or_none = self._collection_body(request)
        return json_response(self.org.create_collection(records, all_or_none=all_or_none))
