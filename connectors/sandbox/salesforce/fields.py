"""Describe and the Tooling API's custom fields, with the validation rules tests add to an object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.sandbox._server import (
    json_response,
)
from connectors.sandbox.salesforce import soql
from connectors.sandbox.salesforce._http import (
    SalesforceRoutes,
    _int_or_none,
)
from connectors.sandbox.salesforce.query import (
    QueryOrg,
)
from connectors.sandbox.salesforce.schema import (
    FieldDef,
    to_18,
)
from connectors.sandbox.salesforce.store import (
    _CUSTOM_NAME_RE,
    COLLECTION_MAX_RECORDS,
    SalesforceError,
    _ValidationRule,
)

CUSTOM_FIELD_TYPES: Mapping[str, str] = {
    "Number": "double",
    "Currency": "currency",
    "Percent": "percent",
    "Text": "string",
    "TextArea": "textarea",
    "LongTextArea": "textarea",
    "Email": "email",
    "Url": "url",
    "Phone": "phone",
    "DateTime": "datetime",
    "Date": "date",
    "Checkbox": "boolean",
    "Picklist": "picklist",
}


class FieldsOrg(QueryOrg):
    """Custom fields (Tooling ``CustomField``) and validation rules, compiled like SOQL conditions."""

    def create_custom_field(
        self,
        full_name: str,
        field_type: str,
        *,
        label: str | None = None,
        length: int | None = None,
        precision: int | None = None,
        scale: int | None = None,
        values: Sequence[str] = (),
        restricted: bool = False,
        default_value: Any = None,
    ) -> FieldDef:
        """Create ``Object.Name__c`` (what the Tooling API's CustomField POST does).

        ``field_type`` is the Metadata API type (:data:`CUSTOM_FIELD_TYPES`). The field is visible to the
        integration user at once (the sandbox grants field-level security with the field).

        :raises SalesforceError: 400 ``DUPLICATE_DEVELOPER_NAME`` when it exists, ``FIELD_INTEGRITY_EXCEPTION``
            for a bad name, type or size, ``INVALID_TYPE`` for an unknown object.
        """
        with self.lock:
            sobject, _, name = full_name.partition(".")
            table = self._by_lower.get(sobject.lower())
            if table is None or not name or table.obj.name == "User":
                raise SalesforceError(400, "INVALID_TYPE", f"Cannot find object: {sobject}", ["FullName"])
            obj = table.obj
            if not _CUSTOM_NAME_RE.match(name) or len(name) > 43 or "__" in name[:-3]:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"The field name '{name}' is not valid: a custom field name must begin with a letter, end with "
                    "'__c', and contain only letters, digits and single underscores (at most 40 characters).",
                    ["FullName"],
                )
            if obj.field(name) is not None:
                raise SalesforceError(
                    400,
                    "DUPLICATE_DEVELOPER_NAME",
                    f"There is already a field named {name[:-3]} on {obj.name}.",
                    ["FullName"],
                )
            sf_type = CUSTOM_FIELD_TYPES.get(field_type)
            if sf_type is None:
                raise SalesforceError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Unsupported field type: {field_type} (the sandbox knows {', '.join(CUSTOM_FIELD_TYPES)})",
                    ["Metadata"],
                )
            fd = FieldDef(name, sf_type, label or name[:-3].replace("_", " "), custom=True)
            if field_type in ("Number", "Currency", "Percent"):
                p = 18 if precision is None else precision
                s = 0 if scale is None else scale
                if not (1 <= p <= 18 and 0 <= s <= p):
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Precision must be 1..18 and scale 0..precision", ["Metadata"]
                    )
                fd.precision, fd.scale = p, s
            elif field_type == "Text":
                if length is None or not 1 <= length <= 255:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Length must be between 1 and 255 for Text", ["Metadata"]
                    )
                fd.length = length
            elif field_type == "LongTextArea":
                if length is None or not 256 <= length <= 131_072:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "Length must be 256..131072 for LongTextArea", ["Metadata"]
                    )
                fd.length = length
                fd.extra["extraTypeInfo"] = "plaintextarea"
            elif field_type in ("TextArea", "Email", "Url", "Phone", "Picklist"):
                fd.length = {"Phone": 40, "Email": 80}.get(field_type, 255)
            if field_type == "Picklist":
                if not values:
                    raise SalesforceError(
                        400, "FIELD_INTEGRITY_EXCEPTION", "A picklist needs at least one value", ["Metadata"]
                    )
                fd.picklist = tuple(values)
                fd.restricted = restricted
            if field_type == "Checkbox":
                fd.nillable = False
                fd.default_value = bool(default_value) if default_value is not None else False
            fd.tooling_id = self.new_id("CustomField")
            obj.add_field(fd)
            table.refresh_names()
            fill = fd.default_value if field_type == "Checkbox" else None
            for row in table.rows.values():
                # the one in-place change: a new column (old queries never select it)
                while len(row) < obj.width:
                    row.append(fill)
            self.custom_fields[fd.tooling_id] = fd
            fd.extra["object"] = obj.name
            fd.extra["metadata_type"] = field_type
            return fd

    def custom_field(self, tooling_id: str) -> FieldDef | None:
        with self.lock:
            full = to_18(tooling_id)
            return self.custom_fields.get(full) if full else None

    def delete_custom_field(self, tooling_id: str) -> bool:
        with self.lock:
            fd = self.custom_field(tooling_id)
            if fd is None:
                return False
            self.objects[fd.extra["object"]].remove_field(fd.name)
            del self.custom_fields[fd.tooling_id]  # type: ignore[arg-type]
            return True

    def add_validation_rule(
        self, sobject: str, name: str, condition: str, message: str, *, error_field: str | None = None
    ) -> None:
        """A validation rule: a write whose resulting record matches the SOQL ``condition`` fails with
        ``FIELD_CUSTOM_VALIDATION_EXCEPTION`` and ``message`` (the way a formula rule evaluating true does)."""
        with self.lock:
            table = self.table(sobject)
            try:
                cond = soql.parse_condition(condition)
                predicate = self._compile_condition(cond, table.obj, condition)
            except soql.SoqlError as exc:
                msg = f"invalid validation rule {name!r}: {exc.message}"
                raise ValueError(msg) from None
            self._rules.append(_ValidationRule(name, table.obj.name, condition, predicate, message, error_field))


class FieldsRoutes(SalesforceRoutes):
    """``/sobjects`` describe and ``/tooling/sobjects/CustomField``."""

    def _describe_global(self, request: Request, version: str) -> Response:
        return json_response(
            {
                "encoding": "UTF-8",
                "maxBatchSize": COLLECTION_MAX_RECORDS,
                "sobjects": [obj.describe_global(version) for obj in self.org.objects.values()],
            }
        )

    def _sobject_info(self, request: Request, version: str, sobject: str) -> Response:
        table = self.org.table(sobject)
        return json_response({"objectDescribe": table.obj.describe_global(version), "recentItems": []})

    def _describe(self, request: Request, version: str, sobject: str) -> Response:
        return json_response(self.org.table(sobject).obj.describe(version))

    def _create_field(self, request: Request, version: str) -> Response:
        body = self._json(request)
        meta = body.get("Metadata") if isinstance(body, dict) else None
        full_name = body.get("FullName") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or not isinstance(full_name, str):
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", "FullName and Metadata are required")
        values: list[str] = []
        restricted = False
        value_set = meta.get("valueSet")
        if isinstance(value_set, dict):
            restricted = bool(value_set.get("restricted"))
            definition = value_set.get("valueSetDefinition") or {}
            for item in definition.get("value") or []:
                if isinstance(item, dict) and item.get("fullName"):
                    values.append(str(item["fullName"]))
        if not meta.get("label"):
            raise SalesforceError(400, "FIELD_INTEGRITY_EXCEPTION", "Field label is required", ["Metadata"])
        fd = self.org.create_custom_field(
            full_name,
            str(meta.get("type", "")),
            label=str(meta["label"]),
            length=_int_or_none(meta.get("length")),
            precision=_int_or_none(meta.get("precision")),
            scale=_int_or_none(meta.get("scale")),
            values=values,
            restricted=restricted,
            default_value=meta.get("defaultValue"),
        )
        return json_response({"id": fd.tooling_id, "success": True, "errors": [], "warnings": [], "infos": []}, 201)

    def _read_field(self, request: Request, version: str, field_id: str) -> Response:
        fd = self.org.custom_field(field_id)
        if fd is None:
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        meta: dict[str, Any] = {"label": fd.label, "type": fd.extra["metadata_type"]}
        if fd.is_number:
            meta.update(precision=fd.precision, scale=fd.scale)
        if fd.length:
            meta["length"] = fd.length
        if fd.picklist:
            meta["valueSet"] = {
                "restricted": fd.restricted,
                "valueSetDefinition": {"value": [{"fullName": v, "label": v, "default": False} for v in fd.picklist]},
            }
        return json_response(
            {
                "attributes": {
                    "type": "CustomField",
                    "url": f"/services/data/v{version}/tooling/sobjects/CustomField/{fd.tooling_id}",
                },
                "Id": fd.tooling_id,
                "DeveloperName": fd.name[:-3],
                "TableEnumOrId": fd.extra["object"],
                "FullName": f"{fd.extra['object']}.{fd.name}",
                "Metadata": meta,
            }
        )

    def _delete_field(self, request: Request, version: str, field_id: str) -> Response:
        if not self.org.delete_custom_field(field_id):
            raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
        return Response(status=204)
