"""The policy file's model: one declarative TOML file says what the shop's privacy policy says.

Every "may X see Y for Z?" question is answered from these models; `load.py` validates a file
into them and `compile.py` turns them into per-route plans. Unknown keys are errors, so a typo
never silently weakens a promise.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LegalBasis = Literal["contract", "legal_obligation", "legitimate_interest", "consent", "vital_interest", "public_task"]
ConsentMechanism = Literal["none", "opt_in", "opt_out", "notice"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
UnknownFields = Literal["drop", "keep", "error"]
RequestTransform = Literal["keep", "encrypt", "encrypt_deterministic", "tokenise", "strip"]
GoogleConsentType = Literal["ad_storage", "analytics_storage", "ad_user_data", "ad_personalization"]
# "report": requests and responses pass unchanged and every decision enforcement would take is
# recorded as a "would have" event (card numbers and CVVs stay protected in both modes).
Mode = Literal["enforce", "report"]
Capability = Literal["request_fields", "response_fields", "free_text", "minimisation", "tracking", "cookies", "lockout"]

CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyHistoryEntry(Strict):
    version: str
    effective_date: dt.date
    summary: str = ""


class PolicyInfo(Strict):
    name: str
    version: str = Field(min_length=1, max_length=64)
    effective_date: dt.date
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    controller: str = ""
    contact: str = ""
    previous_versions: list[PolicyHistoryEntry] = []
    # Versions whose consent still counts; a material change drops older ones (re-consent needed).
    consent_compatible_versions: list[str] = []
    # Enforce, or only report what enforcement would do; per capability overrides the default.
    mode: Mode = "enforce"
    capability_modes: dict[Capability, Mode] = {}


class Category(Strict):
    description: str = ""
    sensitive: bool = False
    # Collection of a forbidden category is refused (minimisation guard).
    forbidden: bool = False


class Purpose(Strict):
    description: str = ""
    legal_basis: LegalBasis
    consent: ConsentMechanism = "none"
    # Global Privacy Control is an opt-out of this purpose (sale, sharing, targeted advertising).
    gpc_opt_out: bool = False
    tcf_purposes: list[int] = []
    google_consent: list[GoogleConsentType] = []
    # Processing that may continue while a subject's data is restricted (storage, legal claims).
    allowed_under_restriction: bool = False
    # Cookie / tracking class shown to the user (essential, functional, analytics, advertising).
    cookie_class: Literal["essential", "functional", "analytics", "advertising", ""] = ""

    @field_validator("tcf_purposes")
    @classmethod
    def _tcf_range(cls, value: list[int]) -> list[int]:
        for number in value:
            if not 1 <= number <= 11:
                raise ValueError(f"TCF purpose {number} is not between 1 and 11")
        return value


class RecipientEndpoint(Strict):
    """An API of the recipient the shop calls (PrivacyTransport): what its request body holds."""

    method: HttpMethod = "POST"
    path: str
    request: BodyRules


class Recipient(Strict):
    description: str = ""
    purposes: list[str]
    # Outbound hosts (PrivacyTransport) that belong to this recipient.
    hosts: list[str] = []
    endpoints: list[RecipientEndpoint] = []
    # category (or category prefix) -> output transform; anything not listed is dropped.
    sees: dict[str, str] = {}
    pseudonym_scope: str = ""


class FieldRule(Strict):
    select: str
    category: str
    transform: RequestTransform = "keep"
    # Validation applied before the transform (a bad card number is refused, never forwarded).
    validate_as: Literal["", "card_number", "email", "phone", "iso_date"] = ""
    # Clear companions the shop may keep next to a protected card number.
    companions: list[Literal["last4", "brand"]] = []
    blind_index: bool = False
    # Whether an absent field is acceptable (most are optional in a shop's JSON).
    required: bool = False
    # With transform = "tokenise": a token shaped like the value so the shop's validation accepts it
    # (docs/encryption.md). On a response or outbound rule: the field may hold such a token.
    token_format: Literal["", "email", "phone", "digits", "card_alias"] = ""
    # digits: the token's length; phone: digits after the prefix (default: up to 15 in all).
    token_length: int = Field(default=0, ge=0, le=19)
    # phone: the E.164 prefix tokens start with (default +999, a reserved country code).
    token_prefix: str = Field(default="", pattern=r"^(\+[0-9]{1,12})?$")
    # The same subject, category and value always get the same token (the shop can look it up).
    deterministic: bool = False

    @model_validator(mode="after")
    def _token_options(self) -> FieldRule:
        if self.token_format == "digits" and self.token_length < 4:
            raise ValueError("token_format = 'digits' needs token_length of at least 4")
        if self.deterministic and not (self.transform == "tokenise" and self.token_format):
            raise ValueError("deterministic applies to format-shaped tokens (transform = 'tokenise' with token_format)")
        return self


class Tokens(Strict):
    """Settings of format-shaped tokens shared by every rule."""

    # E-mail-shaped tokens are <random>@<email_domain>; keep it a domain nobody can receive mail at.
    email_domain: str = Field(default="privacy.invalid", pattern=r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


class Shape(Strict):
    """A reusable record layout (an order, a customer), classified once and used by many routes."""

    subject: str = ""
    fields: list[FieldRule] = []
    personal_objects: list[str] = []
    # Selector of the shop's own id of a record (an order number). Records that do not name their
    # subject (a guest's order, an order whose owner is a URL) are bound to the subject they were
    # written for when the shop creates them, so every recipient the policy grants can read them.
    record_key: str = ""


class BodyRules(Strict):
    # A named shape whose subject, fields and personal objects this body starts from.
    shape: str = ""
    # Selector of the records in the body; each record is about one subject.
    records: str = "$"
    # Path inside a record to the subject's id; empty: the authenticated principal is the subject.
    subject: str = ""
    fields: list[FieldRule] = []
    # Objects holding personal data: keys inside them that no rule classifies follow unknown_fields.
    personal_objects: list[str] = []
    unknown_fields: UnknownFields = "drop"
    # GraphQL responses: rules apply under `data`.
    graphql: bool = False


class FreeTextRule(Strict):
    select: str
    detect: list[Literal["card_number", "prc_resident_id", "us_ssn", "iban", "email", "phone"]]
    action: Literal["reject", "redact"] = "reject"


class Route(Strict):
    method: HttpMethod
    path: str
    description: str = ""
    # The purpose the shop processes this route's data for (what a customer's own call serves).
    purpose: str = ""
    request: BodyRules | None = None
    response: BodyRules | None = None
    free_text: list[FreeTextRule] = []
    # A 422 on a bad body is more useful than a silent pass for routes that must encrypt.
    require_json: bool = True
    # Overrides the policy's mode for this route; empty: follow the policy.
    mode: Mode | Literal[""] = ""

    @field_validator("path")
    @classmethod
    def _path_shape(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with '/'")
        return value


class TrackingRoute(Strict):
    method: HttpMethod
    path: str
    purpose: str
    denied_status: int = Field(default=204, ge=200, le=499)
    pseudonymise: list[str] = []
    truncate_ip: list[str] = []
    drop: list[str] = []
    # Browsing events reach the shop without the visitor's Authorization and Cookie headers.
    forward_credentials: bool = False


class CookieRule(Strict):
    pattern: str
    purpose: str


class TrackingHost(Strict):
    host: str
    purpose: str


class Tracking(Strict):
    routes: list[TrackingRoute] = []
    cookies: list[CookieRule] = []
    hosts: list[TrackingHost] = []
    # "drop": a Set-Cookie that no cookie rule declares is removed ("only these cookies").
    undeclared_cookies: Literal["keep", "drop"] = "keep"


class LoginRoute(Strict):
    method: HttpMethod = "POST"
    path: str
    username_field: str = "email"
    success_statuses: list[int] = [200]
    # Where the shop's success response names the account (selector), for the subject's history.
    subject_field: str = "id"


class AccountRoute(Strict):
    method: HttpMethod
    path: str
    event: Literal["logout", "password_change", "email_change", "account_closure", "registration"]
    # For registrations: where the shop's response names the new account (selector).
    subject_field: str = "id"


class LoginLimits(Strict):
    """Lockout thresholds (defaults from Auth0/Keycloak/Okta, see docs/audit.md)."""

    pair_failures: int = Field(default=10, ge=1)
    pair_block_seconds: float = Field(default=30 * 86_400, gt=0)
    account_failures: int = Field(default=30, ge=1)
    account_wait_increment: float = Field(default=60, gt=0)
    account_max_wait: float = Field(default=900, gt=0)
    account_reset_seconds: float = Field(default=12 * 3600, gt=0)
    ip_failures: int = Field(default=100, ge=1)
    ip_window_seconds: float = Field(default=86_400, gt=0)
    spray_accounts: int = Field(default=10, ge=1)
    spray_window_seconds: float = Field(default=1800, gt=0)
    history_size: int = Field(default=20, ge=1)
    history_seconds: float = Field(default=30 * 86_400, gt=0)
    reset_on_success: bool = True


class Audit(Strict):
    logins: list[LoginRoute] = []
    account_routes: list[AccountRoute] = []
    limits: LoginLimits = LoginLimits()
    raw_ip_days: int = Field(default=30, ge=1)
    event_days: int = Field(default=365, ge=1)
    strict_categories: list[str] = []
    admin_scope: str = "privacy:admin"


class RetentionRule(Strict):
    category: str
    days: int = Field(ge=1)
    action: Literal["delete", "anonymise"] = "delete"
    purpose: str = ""
    reason: str = ""


class LegalHold(Strict):
    category: str
    purpose: str
    days: int = Field(ge=1)
    reason: str


FieldAction = Literal["erase", "anonymise", "keep"]


class StoredRecords(Strict):
    """Where a declarative shop adapter finds one kind of the shop's records (docs/adapters.md)."""

    # Column (SQL) or field lookup (Django, e.g. "user_id" or "user__email") holding the subject id.
    subject: str
    key: str = "id"
    # The shop's word for these records in exports and receipts (default: the table or model name).
    kind: str = ""
    # A policy shape classifying the record's fields (so protected values are revealed in exports).
    shape: str = ""
    # Categories these records hold: a legal hold on one keeps the record, anonymised.
    categories: list[str] = []
    # When erased: each named field erased (emptied), anonymised or kept; the record is deleted unless
    # a field is kept or a legal hold applies.
    fields: dict[str, FieldAction] = {}
    hold_reason: str = ""
    # Column/field with the creation time, for retention.
    created: str = ""


class SqlTable(StoredRecords):
    table: str


class DjangoModel(StoredRecords):
    # "app_label.ModelName"
    model: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")


class Adapter(Strict):
    """Declarative shop adapters: PRIVACY_SHOP_ADAPTER=sql (tables) or =django (models)."""

    tables: list[SqlTable] = []
    models: list[DjangoModel] = []


class Rights(Strict):
    deadline_days: int = Field(default=30, ge=1)
    working_days: bool = False
    legal_holds: list[LegalHold] = []


class MinorsRoute(Strict):
    method: HttpMethod = "POST"
    path: str
    birth_date: str


class Minors(Strict):
    minimum_age: int = Field(default=0, ge=0, le=21)
    routes: list[MinorsRoute] = []


class Breach(Strict):
    """Breach detection over the data-access trail and the response to a finding (docs/breach.md)."""

    # Counting window and the floor of each volume alarm; a principal or recipient with a history
    # alarms only above `baseline_factor` times its busiest past window, and never below the floor.
    window_seconds: float = Field(default=3600, gt=0)
    subjects_per_window: int = Field(default=100, ge=1)
    records_per_window: int = Field(default=1000, ge=1)
    baseline_factor: float = Field(default=3.0, ge=1)
    baseline_days: int = Field(default=30, ge=1)
    # Breadth and new-network alarms need this many past disclosures before they speak.
    learning_disclosures: int = Field(default=50, ge=1)
    # Staff: recipients whose principals are employees (default: the identity's scope recipients).
    staff_recipients: list[str] | None = None
    office_hours: tuple[int, int] = (7, 20)  # [start, end) hours, UTC
    office_days: list[int] = [0, 1, 2, 3, 4]  # Monday = 0
    enumeration_run: int = Field(default=20, ge=3)
    exports_per_window: int = Field(default=5, ge=1)
    # One incident, one finding: the same finding for the same principal is not repeated within this time.
    dedup_seconds: float = Field(default=3600, ge=0)
    # Containment: suspend the principal or the recipient on these findings until an officer lifts it.
    containment: Literal["off", "principal", "recipient"] = "off"
    contain_on: list[str] = ["canary_accessed", "bulk_volume", "enumeration", "export_burst"]

    @model_validator(mode="after")
    def _hours(self) -> Breach:
        start, end = self.office_hours
        if not (0 <= start < end <= 24):
            raise ValueError("office_hours must be [start, end) with 0 <= start < end <= 24")
        if any(not 0 <= d <= 6 for d in self.office_days):
            raise ValueError("office_days are 0 (Monday) to 6 (Sunday)")
        return self


class Identity(Strict):
    subject_claim: str = "sub"
    recipient_claim: str = "recipient"
    purpose_claim: str = "purpose"
    scope_claim: str = "scope"
    # scope -> recipient, for staff roles carried as scopes.
    scope_recipients: dict[str, str] = {}
    # Recipient name of a signed-in customer (who sees their own records in full) and of callers
    # without a token. Neither needs a [recipients] entry: undeclared means they see nothing else.
    customer_recipient: str = "customer"
    anonymous_recipient: str = "public"


class GuestCheckout(Strict):
    """A checkout a caller without an account may make: the guest subject comes from its e-mail."""

    method: HttpMethod = "POST"
    path: str
    # Selector of the guest's e-mail address in the request body.
    email: str
    # Selector of the shop's order-access capability (an order token) in the checkout response.
    capability: str = ""
    # A path template the checkout's redirect `Location` matches (the shop's order-status page):
    # `{capability}` marks the segment holding the capability, `{record}` the order's record key.
    # A template without `{capability}` takes it from the Location's `capability_param` query parameter.
    capability_location: str = ""


class GuestOrderRoute(Strict):
    method: HttpMethod = "GET"
    path: str


class Guests(Strict):
    """Guest checkout (docs/guests.md): protection and rights for customers without an account."""

    checkouts: list[GuestCheckout] = []
    # Routes where presenting a bound capability makes the caller the owner of that order.
    order_routes: list[GuestOrderRoute] = []
    # Where the caller presents the capability: a query parameter and/or a request header.
    capability_param: str = "token"
    capability_header: str = ""
    capability_days: int = Field(default=365, ge=1)


class PaymentRoute(Strict):
    """A route of the shop that answers a payment recipient: its responses keep card numbers."""

    method: HttpMethod
    path: str
    # The recipient the route answers; it must be granted the card category (`sees = "keep"`).
    recipient: str


class Cards(Strict):
    """Card data outside the routes' own rules: the card sentinel on every route (docs/policy.md)."""

    # A card number in the request body of a route with no plan for it: refused (422), or tokenised
    # from the token vault for the signed-in caller (a caller without a subject is still refused).
    unplanned: Literal["refuse", "tokenise"] = "refuse"
    # The category card numbers are protected and masked as (tokens, the owner's view).
    category: str = "user.financial.card.number"
    # Routes whose JSON responses keep card numbers although no response plan covers them.
    payment_routes: list[PaymentRoute] = []
    # Purposes for which the card's owner sees their own full number; otherwise brand and last four.
    reveal: list[str] = []


class Policy(Strict):
    policy: PolicyInfo
    identity: Identity = Identity()
    tokens: Tokens = Tokens()
    guests: Guests = Guests()
    adapter: Adapter = Adapter()
    categories: dict[str, Category]
    purposes: dict[str, Purpose]
    recipients: dict[str, Recipient] = {}
    shapes: dict[str, Shape] = {}
    routes: list[Route] = []
    tracking: Tracking = Tracking()
    audit: Audit = Audit()
    retention: list[RetentionRule] = []
    rights: Rights = Rights()
    minors: Minors = Minors()
    breach: Breach = Breach()
    cards: Cards = Cards()


Recipient.model_rebuild()
Policy.model_rebuild()
