"""The resource groups the gateway serves, as data (docs/design/resource-groups.md).

A resource group is a collection ``/api/v1/<things>`` and its items ``/api/v1/<things>/{id}``
with up to five routes, each calling one RPC operation of the owning service:

=======  ======  ==================  =========================================  ==========
verb     method  path                request sent                               rate
=======  ======  ==================  =========================================  ==========
create   POST    collection          the body (``create.request``)              write
list     GET     collection          ``list.request(query=…)`` (docs/api.md     list
                                     "Collections")
get      GET     item                ``get.request(id=…)``; ``$select``,        single
                                     ``$expand``, ``ETag``
update   PATCH   item                ``update.request(id, patch, expected_      write
                                     version)``: a JSON merge patch, ``If-Match``
delete   DELETE  item                ``delete.request(id, expected_version)``   write
                                     (``If-Match``), or ``(id)``
=======  ======  ==================  =========================================  ==========

One entry of ``RESOURCE_GROUPS`` is everything the gateway knows of a group: the policy
table (``policy.ROUTE_POLICIES``) takes each route's policy from it (``<scope>:read`` for
the GETs, ``<scope>:write`` for the rest), ``entrypoints/resources.py`` makes the handlers
from it, and Litestar documents them in the OpenAPI document (the handlers are named
``create_<one>``, ``list_<many>``, ``get_<one>``, ``update_<one>``, ``delete_<one>``, which
the operation ids end with). The
request, body and view types are the operations' own. Routes a group has beyond these five
(a device's key lookup, an alert's transitions) are written by hand beside it.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from outpost_contracts.alerting import (
    CREATE_RULE,
    DELETE_RULE,
    GET_RULE,
    LIST_RULES,
    UPDATE_RULE,
)
from outpost_contracts.annotations import (
    CREATE_ANNOTATION,
    CREATE_ANNOTATION_CLASS,
    DELETE_ANNOTATION,
    DELETE_ANNOTATION_CLASS,
    GET_ANNOTATION,
    GET_ANNOTATION_CLASS,
    LIST_ANNOTATION_CLASSES,
    UPDATE_ANNOTATION,
    UPDATE_ANNOTATION_CLASS,
)
from outpost_contracts.devices import (
    CREATE_DEVICE,
    DECOMMISSION_DEVICE,
    GET_DEVICE,
    LIST_DEVICES,
    UPDATE_DEVICE,
    Tag,
)
from outpost_contracts.exports import DELETE_EXPORT, LIST_EXPORTS
from outpost_contracts.fleet import (
    CREATE_CONFIG_ARTEFACT,
    CREATE_DESIRED_STATE_BINDING,
    CREATE_DEVICE_PROFILE,
    CREATE_PACK,
    CREATE_SENSOR_PROFILE,
    DELETE_CONFIG_ARTEFACT,
    DELETE_DESIRED_STATE_BINDING,
    DELETE_DEVICE_PROFILE,
    DELETE_PACK,
    DELETE_SENSOR_PROFILE,
    GET_CONFIG_ARTEFACT,
    GET_DESIRED_STATE_BINDING,
    GET_DEVICE_PROFILE,
    GET_PACK,
    GET_SENSOR_PROFILE,
    LIST_CONFIG_ARTEFACTS,
    LIST_DESIRED_STATE_BINDINGS,
    LIST_DEVICE_PROFILES,
    LIST_PACKS,
    LIST_SENSOR_PROFILES,
    UPDATE_DESIRED_STATE_BINDING,
    UPDATE_DEVICE_PROFILE,
    UPDATE_PACK,
    UPDATE_SENSOR_PROFILE,
)
from outpost_contracts.identity import (
    CREATE_API_KEY,
    CREATE_ORGANIZATION,
    CREATE_USER,
    GET_ORGANIZATION,
    GET_USER,
    LIST_API_KEYS,
    LIST_ORGANIZATIONS,
    LIST_USERS,
    REVOKE_API_KEY,
)
from outpost_contracts.notifications import (
    CREATE_CHANNEL,
    DELETE_CHANNEL,
    GET_CHANNEL,
    LIST_CHANNELS,
    UPDATE_CHANNEL,
)
from outpost_contracts.provisioning import (
    CREATE_REGISTRATION_TOKEN,
    LIST_REGISTRATION_TOKENS,
    REVOKE_REGISTRATION_TOKEN,
)
from outpost_contracts.reference_pairs import (
    CREATE_REFERENCE_PAIR,
    DELETE_REFERENCE_PAIR,
    GET_REFERENCE_PAIR,
    LIST_REFERENCE_PAIRS,
    UPDATE_REFERENCE_PAIR,
)
from outpost_contracts.registry import (
    ADD_COMPONENT,
    CREATE_GROUP,
    CREATE_SITE,
    DECLARE_SENSOR,
    DELETE_GROUP,
    DELETE_SITE,
    GET_COMPONENT,
    GET_GROUP,
    GET_SENSOR,
    GET_SITE,
    LIST_COMPONENTS,
    LIST_GROUPS,
    LIST_SENSORS,
    LIST_SITES,
    REMOVE_COMPONENT,
    REMOVE_SENSOR,
    UPDATE_COMPONENT,
    UPDATE_GROUP,
    UPDATE_SENSOR,
    UPDATE_SITE,
)
from outpost_contracts.rpc import Operation
from outpost_gateway.domain.ratelimit import Category

VERBS = ("create", "list", "get", "update", "delete")
METHODS = {"create": "POST", "list": "GET", "get": "GET", "update": "PATCH", "delete": "DELETE"}
ON_ITEM = frozenset({"get", "update", "delete"})
CATEGORIES = {
    "create": Category.WRITE,
    "list": Category.LIST,
    "get": Category.SINGLE,
    "update": Category.WRITE,
    "delete": Category.WRITE,
}
# The fields each verb's request must have (the gateway fills them); create sends the body.
# A delete whose request has ``expected_version`` too takes ``If-Match``.
REQUEST_FIELDS = {
    "list": {"query"},
    "get": {"id"},
    "update": {"id", "patch", "expected_version"},
    "delete": {"id"},
}


@dataclass(frozen=True)
class Doc:
    """What the OpenAPI document says of one route beyond what the group implies."""

    summary: str | None = None
    description: str | None = None
    name: str | None = None  # the operation id, when not ``<verb>_<one>`` (``list_<many>``)


@dataclass(frozen=True)
class Route:
    """One route of a group, as the policy table and the handler factory read it."""

    verb: str
    method: str
    path: str  # the template as the policy table and the OpenAPI document spell it
    access: str  # "read" (the GETs) or "write": the group's scope:access is its policy
    category: Category  # what ``policy.rate_category`` answers for it
    operation: Operation[Any, Any]
    name: str  # the handler's name: the operation id
    doc: Doc


Routes = list[Route]  # (in ResourceGroup, ``list`` is a verb)


@dataclass(frozen=True)
class ResourceGroup:
    path: str  # the collection, e.g. /api/v1/sites
    one: str  # in operation ids: site, device_group…
    many: str  # sites, device_groups…
    # GETs need <scope>:read, the other routes <scope>:write; an operator's group (no scope)
    # is the platform operator's only
    scope: str | None
    create: Operation[Any, Any] | None = None
    list: Operation[Any, Any] | None = None
    get: Operation[Any, Any] | None = None
    update: Operation[Any, Any] | None = None
    delete: Operation[Any, Any] | None = None
    # Relations carried inline on the view, which ``$expand`` accepts (and which change nothing)
    relations: Mapping[str, type[msgspec.Struct]] = field(default_factory=dict)
    docs: Mapping[str, Doc] = field(default_factory=dict)  # by verb
    etag: str | None = None  # the ETag header's description; "The <one>'s version" by default
    versioned: bool = True  # get answers the ETag (and documents it)
    tag: str | None = None  # the OpenAPI tag; the collection's last segment by default

    def __post_init__(self) -> None:
        for verb, fields in REQUEST_FIELDS.items():
            op = self.operation(verb)
            if op is None:
                continue
            missing = fields - {f.name for f in msgspec.structs.fields(op.request)}
            if missing:
                raise TypeError(
                    f"{self.path}: {verb}'s request {op.request.__name__} lacks {missing}"
                )
        if self.view is None:
            raise TypeError(f"{self.path}: a group needs one verb besides delete")
        unknown = set(self.docs) - set(VERBS)
        if unknown:
            raise TypeError(f"{self.path}: docs for no verb: {unknown}")

    def operation(self, verb: str) -> Operation[Any, Any] | None:
        op: Operation[Any, Any] | None = getattr(self, verb)
        return op

    @property
    def view(self) -> Any:
        """What an item is answered as: the reply of get (of list's items, of update, of
        create)."""
        if self.get is not None:
            return self.get.reply
        if self.list is not None:
            (item,) = typing.get_args(self.list.reply)  # Page[View]
            return item
        op = self.update or self.create
        return op.reply if op is not None else None

    @property
    def patch_body(self) -> Any:
        """The body of PATCH: the type of the update request's ``patch``."""
        assert self.update is not None
        (patch,) = (f for f in msgspec.structs.fields(self.update.request) if f.name == "patch")
        return patch.type

    @property
    def openapi_tag(self) -> str:
        return self.tag or self.path.rsplit("/", 1)[1]

    @property
    def item(self) -> str:
        return f"{self.path}/{{id}}"

    @property
    def etag_description(self) -> str:
        return self.etag or f"The {self.one.replace('_', ' ')}'s version"

    @property
    def delete_is_versioned(self) -> bool:
        """Whether DELETE takes ``If-Match`` (its request has ``expected_version``)."""
        assert self.delete is not None
        return "expected_version" in {f.name for f in msgspec.structs.fields(self.delete.request)}

    def routes(self) -> Routes:
        found = []
        for verb in VERBS:
            op = self.operation(verb)
            if op is None:
                continue
            doc = self.docs.get(verb, Doc())
            default = f"list_{self.many}" if verb == "list" else f"{verb}_{self.one}"
            method = METHODS[verb]
            found.append(
                Route(
                    verb=verb,
                    method=method,
                    path=self.item if verb in ON_ITEM else self.path,
                    access="read" if method == "GET" else "write",
                    category=CATEGORIES[verb],
                    operation=op,
                    name=doc.name or default,
                    doc=doc,
                )
            )
        return found


_SECRET = (
    "A webhook's `secret` is write-only: no answer, event or log carries it (`hasSecret` says"
    " there is one); deliveries are signed with it (`X-Outpost-Signature: sha256=<hex"
    " HMAC-SHA256 of the body>`)."
)
_SSRF = (
    "A webhook `url` must be http(s), and every address its host resolves to must be public:"
    " loopback, private, link-local, multicast, reserved addresses and their IPv6 forms are a"
    " `validation_error` on `url` unless the deployment allows loopback or private ones. The"
    " host is resolved and checked again at every delivery, and redirects are not followed."
)

RESOURCE_GROUPS: tuple[ResourceGroup, ...] = (
    # identity: organizations (the operator's; suspend and reinstate: entrypoints/identity.py),
    # API keys and users
    ResourceGroup(
        path="/api/v1/admin/organizations",
        one="organization",
        many="organizations",
        scope=None,
        create=CREATE_ORGANIZATION,
        list=LIST_ORGANIZATIONS,
        get=GET_ORGANIZATION,
        versioned=False,
    ),
    ResourceGroup(
        path="/api/v1/api-keys",
        one="api_key",
        many="api_keys",
        scope="api-keys",
        create=CREATE_API_KEY,  # answers the key itself, once
        list=LIST_API_KEYS,
        delete=REVOKE_API_KEY,
        docs={"delete": Doc(name="revoke_api_key")},
    ),
    ResourceGroup(
        path="/api/v1/users",
        one="user",
        many="users",
        scope="users",
        create=CREATE_USER,
        list=LIST_USERS,
        get=GET_USER,
        versioned=False,
    ),
    # devices and the registry beside them (sites, device groups, components, sensors)
    ResourceGroup(
        path="/api/v1/devices",
        one="device",
        many="devices",
        scope="devices",
        create=CREATE_DEVICE,
        list=LIST_DEVICES,
        get=GET_DEVICE,
        update=UPDATE_DEVICE,
        delete=DECOMMISSION_DEVICE,
        relations={"tags": Tag},  # inline on every device: $expand=tags changes nothing
        docs={"delete": Doc(summary="Decommission a device", name="decommission_device")},
    ),
    ResourceGroup(
        path="/api/v1/sites",
        one="site",
        many="sites",
        scope="devices",
        create=CREATE_SITE,
        list=LIST_SITES,
        get=GET_SITE,
        update=UPDATE_SITE,
        delete=DELETE_SITE,
        docs={"delete": Doc(summary="Delete a site no device uses")},
    ),
    ResourceGroup(
        path="/api/v1/device-groups",
        one="device_group",
        many="device_groups",
        scope="devices",
        create=CREATE_GROUP,
        list=LIST_GROUPS,
        get=GET_GROUP,
        update=UPDATE_GROUP,
        delete=DELETE_GROUP,
        docs={"delete": Doc(summary="Delete a device group no device is in")},
    ),
    ResourceGroup(
        path="/api/v1/components",
        one="component",
        many="components",
        scope="devices",
        create=ADD_COMPONENT,
        list=LIST_COMPONENTS,
        get=GET_COMPONENT,
        update=UPDATE_COMPONENT,
        delete=REMOVE_COMPONENT,
        docs={"delete": Doc(summary="Remove a component")},
    ),
    ResourceGroup(
        path="/api/v1/sensors",
        one="sensor",
        many="sensors",
        scope="devices",
        create=DECLARE_SENSOR,
        list=LIST_SENSORS,
        get=GET_SENSOR,
        update=UPDATE_SENSOR,
        delete=REMOVE_SENSOR,
        docs={"delete": Doc(summary="Remove a sensor")},
    ),
    # registration tokens (provisioning itself and certificates: entrypoints/provisioning.py)
    ResourceGroup(
        path="/api/v1/devices/registration/tokens",
        one="registration_token",
        many="registration_tokens",
        scope="devices",
        tag="provisioning",
        create=CREATE_REGISTRATION_TOKEN,  # answers the token itself, once
        list=LIST_REGISTRATION_TOKENS,
        delete=REVOKE_REGISTRATION_TOKEN,
        docs={
            "create": Doc(
                summary=(
                    "Create a one-time registration token (and the device, if no device has"
                    " the name)"
                )
            ),
            "delete": Doc(summary="Revoke a registration token", name="revoke_registration_token"),
        },
    ),
    # annotations and their classes (decision 61): members label data as they send it
    ResourceGroup(
        path="/api/v1/annotation-classes",
        one="annotation_class",
        many="annotation_classes",
        scope="readings",
        create=CREATE_ANNOTATION_CLASS,
        list=LIST_ANNOTATION_CLASSES,
        get=GET_ANNOTATION_CLASS,
        update=UPDATE_ANNOTATION_CLASS,
        delete=DELETE_ANNOTATION_CLASS,
        docs={"delete": Doc(summary="Delete an annotation class no annotation has")},
    ),
    # the list takes the window from/to besides the conventions: entrypoints/annotations.py
    ResourceGroup(
        path="/api/v1/annotations",
        one="annotation",
        many="annotations",
        scope="readings",
        create=CREATE_ANNOTATION,
        get=GET_ANNOTATION,
        update=UPDATE_ANNOTATION,
        delete=DELETE_ANNOTATION,
        relations={"tags": Tag},
        etag="The version",
    ),
    # reference pairs (ADR 0098): a sensor under test and a reference sensor; their
    # comparison is written by hand in entrypoints/reference_pairs.py
    ResourceGroup(
        path="/api/v1/reference-pairs",
        one="reference_pair",
        many="reference_pairs",
        scope="readings",
        create=CREATE_REFERENCE_PAIR,
        list=LIST_REFERENCE_PAIRS,
        get=GET_REFERENCE_PAIR,
        update=UPDATE_REFERENCE_PAIR,
        delete=DELETE_REFERENCE_PAIR,
        docs={
            "create": Doc(
                summary="Create a reference pair",
                description=(
                    "A sensor under test (`test`) and a reference sensor (`reference`), each"
                    " a `deviceId` and a `sensor` key: NUMBER sensors of this organization's"
                    " devices, not the same one twice. `windowSeconds` (60, 300, 900,"
                    " 3600 or 86400; default 300): the buckets readings are aligned into when"
                    " the comparison names no `interval`."
                ),
            ),
            "update": Doc(
                summary="Change a reference pair's name, description or matching window",
                description="The sensors a pair compares are its identity and do not change.",
            ),
        },
    ),
    # alerting (decision 63); alerts and their transitions: entrypoints/alerting.py
    ResourceGroup(
        path="/api/v1/alert-rules",
        one="alert_rule",
        many="alert_rules",
        scope="alert-rules",
        create=CREATE_RULE,
        list=LIST_RULES,
        get=GET_RULE,
        update=UPDATE_RULE,
        delete=DELETE_RULE,
        docs={"delete": Doc(summary="Delete an alert rule (its unresolved alerts are resolved)")},
    ),
    # exports (decision 65): create (201, ETag), get (a fresh signed link) and the download
    # are written by hand in entrypoints/exports.py
    ResourceGroup(
        path="/api/v1/exports",
        one="export",
        many="exports",
        scope="exports",
        list=LIST_EXPORTS,
        delete=DELETE_EXPORT,
        docs={
            "list": Doc(summary="List exports"),
            "delete": Doc(
                summary="Cancel a pending or running export; delete a finished one and its archive"
            ),
        },
    ),
    # notification channels (decision 64); /test and the delivery logs:
    # entrypoints/notifications.py
    ResourceGroup(
        path="/api/v1/notification-channels",
        one="notification_channel",
        many="notification_channels",
        scope="notification-channels",
        create=CREATE_CHANNEL,
        list=LIST_CHANNELS,
        get=GET_CHANNEL,
        update=UPDATE_CHANNEL,
        delete=DELETE_CHANNEL,
        etag="The channel's version",
        docs={
            "create": Doc(
                summary="Create a notification channel",
                description=(
                    "`{type: WEBHOOK, name, url, secret}` or `{type: EMAIL, name, addresses}`. "
                    f"{_SECRET} {_SSRF}"
                ),
            ),
            "list": Doc(summary="List notification channels"),
            "update": Doc(
                summary="Change a notification channel (JSON merge patch)",
                description=f"`type` never changes. {_SECRET} {_SSRF}",
            ),
            "delete": Doc(summary="Delete a notification channel (pending deliveries are dropped)"),
        },
    ),
    # sensor and device profiles, packs (issue 21, ADR 0092); a pack's /export and
    # /packs/import: entrypoints/packs.py
    ResourceGroup(
        path="/api/v1/sensor-profiles",
        one="sensor_profile",
        many="sensor_profiles",
        scope="fleet",
        create=CREATE_SENSOR_PROFILE,
        list=LIST_SENSOR_PROFILES,
        get=GET_SENSOR_PROFILE,
        update=UPDATE_SENSOR_PROFILE,
        delete=DELETE_SENSOR_PROFILE,
        docs={
            "create": Doc(
                summary="Describe a kind of measurement once",
                description=(
                    "`unit`: a UCUM code (`Cel`, `%`, `hPa`, `kW.h`, `m/s`, `[ppm]`...);"
                    " `min`/`max` (min <= max) and `precision` for NUMBER only. A change is a"
                    " change of every device profile naming it (a new version of each)."
                ),
            ),
            "delete": Doc(
                summary="Delete a sensor profile no device profile names (409 otherwise)"
            ),
        },
    ),
    ResourceGroup(
        path="/api/v1/device-profiles",
        one="device_profile",
        many="device_profiles",
        scope="fleet",
        create=CREATE_DEVICE_PROFILE,
        list=LIST_DEVICE_PROFILES,
        get=GET_DEVICE_PROFILE,
        update=UPDATE_DEVICE_PROFILE,
        delete=DELETE_DEVICE_PROFILE,
        docs={
            "create": Doc(
                summary="Describe a kind of device once",
                description=(
                    "Components, sensors (each from one of the organization's sensor"
                    " profiles), a default config artefact, alert rule templates (an alert"
                    " rule without its scope), the interval devices report at"
                    " (`impliedRuleTemplates`: the `nodata` and `offline` rules it implies)"
                    " and the firmware family. Every change is a new version, applied to the"
                    " devices that have the profile."
                ),
            ),
            "update": Doc(summary="Change a device profile (JSON merge patch; a list replaces)"),
            "delete": Doc(summary="Delete a device profile no device has (409 otherwise)"),
        },
    ),
    ResourceGroup(
        path="/api/v1/packs",
        one="pack",
        many="packs",
        scope="fleet",
        create=CREATE_PACK,
        list=LIST_PACKS,
        get=GET_PACK,
        update=UPDATE_PACK,
        delete=DELETE_PACK,
        docs={
            "create": Doc(
                summary="Author a pack from the organization's items",
                description=(
                    "`{name, version: MAJOR.MINOR.PATCH, items: [{kind, id}]}`: a device"
                    " profile brings the sensor profiles and the config artefact it names."
                    " `GET /packs/{id}/export` gives the document another organization"
                    " imports with `POST /packs/import`."
                ),
            ),
            "update": Doc(
                summary="Change an authored pack: its next version, name or items",
                description="`version` only grows; an imported pack changes by importing.",
            ),
            "delete": Doc(
                summary="Delete an authored pack (its items stay) or uninstall an imported one",
                description=(
                    "Uninstalling removes what the install created and still exists, and"
                    " nothing else (409 while a device or another profile uses one of them)."
                ),
            ),
        },
    ),
    # fleet configuration (ADR 0090); an artefact's versions: entrypoints/fleet.py
    ResourceGroup(
        path="/api/v1/config-artefacts",
        one="config_artefact",
        many="config_artefacts",
        scope="fleet",
        create=CREATE_CONFIG_ARTEFACT,
        list=LIST_CONFIG_ARTEFACTS,
        get=GET_CONFIG_ARTEFACT,
        delete=DELETE_CONFIG_ARTEFACT,
        etag="The config artefact's latest version",
        docs={
            "create": Doc(
                summary="Create a config artefact (its version 1)",
                description=(
                    "`{name, document, schema?}`: `name` unique in the organization;"
                    " `document` a JSON object of at most 256 KiB encoded; `schema` an"
                    " optional JSON Schema (draft 2020-12 unless its `$schema` names"
                    " another; `$ref` resolves only inside it) the document must satisfy"
                    " (400 `validation_error` listing the problems). Every later change is a"
                    " new version: `POST /config-artefacts/{id}/versions`."
                ),
            ),
            "list": Doc(
                summary="List config artefacts",
                description=(
                    "Without their documents (`GET /config-artefacts/{id}` has the latest"
                    " version's): `version` is the latest version's number."
                ),
            ),
            "get": Doc(summary="Get a config artefact with its latest version's document"),
            "delete": Doc(
                summary="Delete a config artefact no binding uses, with all its versions",
                description="409 `conflict` (`details.usedBy`) while a binding uses it.",
            ),
        },
    ),
    ResourceGroup(
        path="/api/v1/desired-state-bindings",
        one="desired_state_binding",
        many="desired_state_bindings",
        scope="fleet",
        create=CREATE_DESIRED_STATE_BINDING,
        list=LIST_DESIRED_STATE_BINDINGS,
        get=GET_DESIRED_STATE_BINDING,
        update=UPDATE_DESIRED_STATE_BINDING,
        delete=DELETE_DESIRED_STATE_BINDING,
        docs={
            "create": Doc(
                summary="Bind a config artefact version to a target",
                description=(
                    '`{artefactId, artefactVersion: <n> | "latest" (default), target:'
                    " {type: ORGANIZATION | PROFILE | SITE | GROUP | DEVICE, id?}, priority"
                    " (-1000..1000, default 0)}`. Another organization's artefact is 404, and"
                    " so is a target id that names none of the organization's sites, groups"
                    " or devices; `id` is required for every type but ORGANIZATION. A"
                    " device's effective desired state merges every binding that applies to"
                    " it (RFC 7396), from the least specific target type to the most"
                    " (ORGANIZATION, PROFILE, SITE, GROUP, DEVICE), then by priority (higher"
                    " later), then by binding id: the last one wins a key."
                ),
            ),
            "list": Doc(
                summary="List desired-state bindings",
                description=(
                    'Filters: `artefactId`, `artefactVersion` (`null`: "latest"),'
                    " `target.type`, `target.id` (or `targetType`, `targetId`), `priority`."
                ),
            ),
            "update": Doc(
                summary="Change a binding's artefact version or priority (JSON merge patch)",
                description="The artefact and the target are the binding's identity.",
            ),
        },
    ),
)


def group_at(path: str) -> ResourceGroup:
    """The group whose collection is ``path``."""
    (group,) = (g for g in RESOURCE_GROUPS if g.path == path)
    return group
