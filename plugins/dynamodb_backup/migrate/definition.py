"""A pipeline definition in any of the shapes a user holds, read into one: objects with fields, parameters, values.

Shapes (see ../shared/reference/datapipeline-definitions.md §1): the definition file (``objects``/``parameters``/
``values`` with plain keys and ``{"ref": id}``), which is also what ``aws datapipeline get-pipeline-definition``
prints; and the API's (``pipelineObjects``/``parameterObjects``/``parameterValues``, or ``objects`` whose entries
carry ``fields`` of ``key`` + ``stringValue``/``refValue``), as boto3 and the raw API return it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dynamodb_backup.errors import ParameterError


@dataclass(frozen=True)
class Ref:
    """A reference to another object by its id."""

    id: str


Value = str | Ref


@dataclass
class Definition:
    source: str
    objects: dict[str, dict[str, list[Value]]]
    """id -> field -> values (a field may repeat); ``id``, ``name`` and ``type`` are fields too."""
    defaults: dict[str, str] = field(default_factory=dict)
    """Parameter id -> its ``default``."""
    values: dict[str, str] = field(default_factory=dict)
    """Parameter id -> the value the pipeline was given (a value overrides the default)."""
    template_name: str | None = None

    def parameter(self, name: str) -> str | None:
        return self.values.get(name, self.defaults.get(name))

    def of_type(self, *types: str) -> list[str]:
        wanted = {t.lower() for t in types}
        return [oid for oid, fields in self.objects.items() if self.first(oid, "type", str, "").lower() in wanted]

    def get(self, oid: str, key: str) -> list[Value]:
        """A field's values, inherited as Data Pipeline does: the object, its ``parent`` chain, then Default."""
        seen: set[str] = set()
        current: str | None = oid
        while current is not None and current not in seen and current in self.objects:
            seen.add(current)
            if key in self.objects[current]:
                return self.objects[current][key]
            parents = [v.id for v in self.objects[current].get("parent", []) if isinstance(v, Ref)]
            current = parents[0] if parents else None
        if oid != "Default" and "Default" in self.objects and key not in ("id", "name", "type"):
            return self.objects["Default"].get(key, [])
        return []

    def first(self, oid: str, key: str, kind: type, default: Any = None) -> Any:
        found = [v for v in self.get(oid, key) if isinstance(v, kind)]
        return found[0] if found else default


def _value(raw: Any, where: str) -> list[Value]:
    if isinstance(raw, list):
        return [v for item in raw for v in _value(item, where)]
    if isinstance(raw, dict) and set(raw) == {"ref"}:
        return [Ref(str(raw["ref"]))]
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        return [str(raw)]
    raise ParameterError(f"{where}: expected a string, a list or {{\"ref\": id}}, got {raw!r}")


def _api_fields(fields: Any, where: str) -> dict[str, list[Value]]:
    result: dict[str, list[Value]] = {}
    if not isinstance(fields, list):
        raise ParameterError(f"{where}: 'fields' must be a list of {{key, stringValue|refValue}}")
    for item in fields:
        if not isinstance(item, dict) or "key" not in item:
            raise ParameterError(f"{where}: a field without 'key': {item!r}")
        value: Value = Ref(str(item["refValue"])) if "refValue" in item else str(item.get("stringValue", ""))
        result.setdefault(str(item["key"]), []).append(value)
    return result


def _objects(raw: Any, source: str) -> dict[str, dict[str, list[Value]]]:
    if not isinstance(raw, list):
        raise ParameterError(f"{source}: 'objects' must be a list")
    objects: dict[str, dict[str, list[Value]]] = {}
    for i, obj in enumerate(raw):
        where = f"{source}: objects[{i}]"
        if not isinstance(obj, dict) or "id" not in obj:
            raise ParameterError(f"{where}: an object needs an 'id'")
        oid = str(obj["id"])
        if "fields" in obj:  # the API's shape
            fields = _api_fields(obj["fields"], f"{where} ({oid})")
        else:
            fields = {str(k): _value(v, f"{where} ({oid}).{k}") for k, v in obj.items()}
        fields.setdefault("name", [str(obj.get("name", oid))])
        fields["id"] = [oid]
        objects[oid] = fields
    return objects


def _parameters(raw: Any, source: str) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for i, param in enumerate(raw or []):
        if not isinstance(param, dict) or "id" not in param:
            raise ParameterError(f"{source}: parameters[{i}]: a parameter needs an 'id'")
        if "attributes" in param:  # the API's shape
            attributes = {a.get("key"): a.get("stringValue") for a in param["attributes"] if isinstance(a, dict)}
        else:
            attributes = param
        if attributes.get("default") is not None:
            defaults[str(param["id"])] = str(attributes["default"])
    return defaults


def _values(raw: Any, source: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): str(v[0] if isinstance(v, list) and v else v) for k, v in raw.items()}
    if isinstance(raw, list):  # the API's parameterValues: [{id, stringValue}]
        return {str(v["id"]): str(v.get("stringValue", "")) for v in raw if isinstance(v, dict) and "id" in v}
    raise ParameterError(f"{source}: 'values' must be a mapping of parameter id to value")


def read_definition(doc: Any, source: str) -> Definition:
    """Any of the shapes above; an error names the file and the object."""
    if not isinstance(doc, dict):
        raise ParameterError(f"{source}: not a pipeline definition (expected a JSON object with 'objects')")
    objects = doc.get("objects", doc.get("pipelineObjects"))
    if objects is None:
        raise ParameterError(f"{source}: not a pipeline definition: no 'objects' (or 'pipelineObjects')")
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    return Definition(source, _objects(objects, source),
                      _parameters(doc.get("parameters", doc.get("parameterObjects")), source),
                      _values(doc.get("values", doc.get("parameterValues")), source),
                      metadata.get("templateName"))
