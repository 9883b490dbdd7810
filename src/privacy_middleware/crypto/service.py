"""KeyService: the one object the middleware calls to encrypt, reveal, tokenise and erase fields.

Hierarchy: root provider -> tenant key-encryption key (one per generation; `rotate` adds one)
-> one random key per subject, stored wrapped -> one AES-GCM key per subject and category (HKDF).
A separate, stable tenant index key gives subject handles, tombstone markers and blind indexes.
Remote providers are called only to unwrap tenant keys, through a bounded TTL cache with
single-flight, so the request path makes no key-service call once warm.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import PrivacyError
from ..netguard import OutboundGuard
from ..outbound import guarded_client
from ..store import Database
from ..store import keys as store
from ..store.erasures import record_erasure
from .cache import SingleFlightCache
from .encoding import b64url_encode, length_prefixed
from .envelope import DETERMINISTIC, RANDOMISED, SealingContexts, SubjectCipher, is_envelope, new_kid, parse_envelope
from .errors import DecryptionFailed, SubjectErased
from .index_keys import IndexKeys
from .providers import RootKeyProvider, WrappedKey, needs_http, open_provider
from .results import ErasureResult, GenerationStatus, KeyStatus, RewrapResult, RotationResult, SubjectHoldings
from .shaped import TokenShape, shaped_token

logger = logging.getLogger("privacy_middleware.crypto")

TOKEN_PREFIX = "tok_"
_TOKEN = re.compile(r"tok_[A-Za-z0-9_-]{22}")
_MAX_CONTEXT = 512
MARKER_PREFIX = "ts1"
SHAPED_TOKEN_CATEGORY = "vault.shaped_token"


def is_token(value: object) -> bool:
    """True for a vault token made by `KeyService.tokenise`."""
    return isinstance(value, str) and bool(_TOKEN.fullmatch(value))


def _check_context(**names: str) -> None:
    for name, value in names.items():
        if not isinstance(value, str) or not value or len(value) > _MAX_CONTEXT:
            raise PrivacyError("invalid_key_context", f"{name} must be a non-empty string of at most 512 characters")


class _SubjectEntry:
    """A cached subject key with the subject it was verified for (compared on every use), and the
    sealer of that subject's fresh values under it (built once with the entry, not per request)."""

    __slots__ = ("cipher", "sealer", "subject")

    def __init__(self, subject: str, cipher: SubjectCipher, tenant: str) -> None:
        self.subject = subject
        self.cipher = cipher
        self.sealer = SubjectSealer(cipher, tenant, subject)


def _check_category(category: object) -> None:
    if type(category) is not str or not category or len(category) > _MAX_CONTEXT:
        _check_context(category=category)  # type: ignore[arg-type]  # refuses it


class SubjectSealer:
    """Seals clear values (never envelopes: callers refuse those first) for one subject."""

    __slots__ = ("_checked", "_cipher", "_subject", "_tenant")

    _MEMO = 64  # category tuples remembered; a policy's routes name a handful

    def __init__(self, cipher: SubjectCipher, tenant: str, subject: str) -> None:
        self._cipher, self._tenant, self._subject = cipher, tenant, subject
        # the sealing contexts of each category tuple already checked (`encrypt_values`)
        self._checked: dict[tuple[str, ...], SealingContexts] = {}

    def encrypt(self, value: str, category: str) -> str:
        if type(category) is not str or not category or len(category) > _MAX_CONTEXT:
            _check_context(category=category)  # refuses it (the common case above costs no call)
        return self._cipher.seal(value, tenant=self._tenant, category=category, subject=self._subject)

    def encrypt_values(self, values: Sequence[str], categories: tuple[str, ...]) -> list[str]:
        """`encrypt` of each value under the category at its position, in one call: plaintext values
        in, pe1 envelopes out (`SubjectCipher.seal_values`). The categories are checked, and their
        associated data and keys found, once per tuple (a route passes the same one every request)."""
        contexts = self._checked.get(categories)
        if contexts is None:
            for category in categories:
                _check_category(category)
            contexts = self._cipher.randomised_contexts(self._tenant, self._subject, categories)
            if len(self._checked) < self._MEMO:
                self._checked[categories] = contexts
        return self._cipher.seal_values(values, contexts)

    def encrypt_deterministic(self, value: str, category: str) -> str:
        _check_context(category=category)
        return self._cipher.seal_deterministic(value, tenant=self._tenant, category=category, subject=self._subject)


class KeyService:
    """Field encryption for one tenant. Build it once with `open`, pass it in, `close` it at shutdown."""

    def __init__(
        self,
        *,
        provider: RootKeyProvider,
        database: Database,
        tenant: str,
        cache_ttl: float,
        cache_size: int,
        owned_http: httpx.AsyncClient | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        _check_context(tenant=tenant)
        if len(tenant) > 200:
            raise PrivacyError("invalid_key_context", "tenant must be at most 200 characters")
        self.provider = provider
        self.database = database
        self.tenant = tenant
        self._owned_http = owned_http
        self._keks: SingleFlightCache[int, bytes] = SingleFlightCache(maxsize=256, ttl=cache_ttl, timer=timer)
        self._index: SingleFlightCache[str, IndexKeys] = SingleFlightCache(maxsize=1, ttl=cache_ttl, timer=timer)
        self._subjects: SingleFlightCache[str, _SubjectEntry] = SingleFlightCache(
            maxsize=cache_size, ttl=cache_ttl, timer=timer
        )
        self._root_tombstones: set[tuple[str, str | None]] = set()
        # Told of every erasure (by subject hash), so other instances can drop cached keys at once.
        self.erasure_listeners: list[Callable[[str], Awaitable[None]]] = []
        # False while this instance may have missed an erasure (ErasureWatch): cached keys are not used.
        self.cache_fresh: Callable[[], bool] | None = None
        self._tenant_tag = hashlib.sha256(tenant.encode()).hexdigest()[:16]

    # -- construction --------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        keys_url: str,
        *,
        database: Database,
        tenant: str,
        http: httpx.AsyncClient | None = None,
        guard: OutboundGuard | None = None,
        cache_ttl: float = 300.0,
        cache_size: int = 10_000,
    ) -> KeyService:
        """`guard` decides which addresses an owned client may reach (PRIVACY_OUTBOUND__ALLOW);
        without one, only public addresses."""
        owned: httpx.AsyncClient | None = None
        if http is None and needs_http(keys_url):
            owned = http = guarded_client(
                guard or OutboundGuard(purpose="key service"), timeout=httpx.Timeout(5.0, connect=2.0)
            )
        try:
            provider = await open_provider(keys_url, http=http)
            service = cls(
                provider=provider,
                database=database,
                tenant=tenant,
                cache_ttl=cache_ttl,
                cache_size=cache_size,
                owned_http=owned,
            )
            await service._bootstrap()
        except BaseException:
            if owned is not None:
                await owned.aclose()
            raise
        return service

    async def close(self) -> None:
        self._subjects.clear()
        self._keks.clear()
        self._index.clear()
        await self.provider.aclose()
        if self._owned_http is not None:
            await self._owned_http.aclose()

    async def __aenter__(self) -> KeyService:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

    def _context(self, purpose: str, generation: int) -> Mapping[str, str]:
        return {"tenant": self.tenant, "purpose": purpose, "generation": str(generation)}

    async def _ensure_tenant_key(self, purpose: str, generation: int) -> store.TenantKeyRow:
        """Create a tenant key of this generation unless one exists; a lost race reads the winner's."""
        async with self.database.connect() as conn:
            row = await store.tenant_key(conn, self.tenant, purpose, generation)
        if row is not None:
            return row
        key, wrapped = await self.provider.generate(context=self._context(purpose, generation))
        async with self.database.begin() as conn:
            created = await store.insert_tenant_key(
                conn,
                tenant=self.tenant,
                purpose=purpose,
                generation=generation,
                root_version=wrapped.root_version,
                wrapped=wrapped.blob,
            )
            row = await store.tenant_key(conn, self.tenant, purpose, generation)
        if row is None:  # pragma: no cover - inserted or found above
            raise RuntimeError("tenant key vanished")
        if created:
            if purpose == store.KEK:
                self._keks.put(generation, key)
            else:
                self._index.put("index", IndexKeys(key, self.tenant))
        return row

    async def _bootstrap(self) -> None:
        await self._ensure_tenant_key(store.INDEX, 0)
        async with self.database.connect() as conn:
            keks = await store.tenant_key_rows(conn, self.tenant, store.KEK)
        if not keks:
            await self._ensure_tenant_key(store.KEK, 1)
        await self._replay_root_tombstones()

    # -- tenant keys ---------------------------------------------------------------------

    async def _index_keys(self) -> IndexKeys:
        async def load() -> IndexKeys:
            async with self.database.connect() as conn:
                row = await store.tenant_key(conn, self.tenant, store.INDEX, 0)
            if row is None:
                raise DecryptionFailed("the tenant index key is missing from the key store")
            key = await self.provider.unwrap(
                WrappedKey(row.root_version, row.wrapped), context=self._context(store.INDEX, 0)
            )
            return IndexKeys(key, self.tenant)

        return await self._index.get("index", load)

    async def _kek(self, generation: int) -> bytes:
        async def load() -> bytes:
            async with self.database.connect() as conn:
                row = await store.tenant_key(conn, self.tenant, store.KEK, generation)
            if row is None:
                raise DecryptionFailed("a key generation is missing from the key store")
            return await self.provider.unwrap(
                WrappedKey(row.root_version, row.wrapped), context=self._context(store.KEK, generation)
            )

        return await self._keks.get(generation, load)

    async def _primary_generation(self) -> store.TenantKeyRow:
        async with self.database.connect() as conn:
            rows = await store.tenant_key_rows(conn, self.tenant, store.KEK)
        if not rows:
            raise DecryptionFailed("the key store has no tenant key")
        return rows[-1]

    # -- subject keys --------------------------------------------------------------------

    def _subject_aad(self, kid: str, subject_hash: str) -> bytes:
        return length_prefixed("subject-key", self.tenant, kid, subject_hash)

    async def _wrap_subject_key(self, key: bytes, kid: str, subject_hash: str, generation: int) -> bytes:
        nonce = os.urandom(12)
        kek = await self._kek(generation)
        return nonce + AESGCM(kek).encrypt(nonce, key, self._subject_aad(kid, subject_hash))

    async def _unwrap_subject_key(self, row: store.SubjectKeyRow) -> bytes:
        kek = await self._kek(row.generation)
        try:
            return AESGCM(kek).decrypt(row.wrapped[:12], row.wrapped[12:], self._subject_aad(row.kid, row.subject_hash))
        except (InvalidTag, ValueError):
            raise DecryptionFailed("a stored subject key could not be unwrapped") from None

    async def _erased(self, index: IndexKeys, kid: str, subject_hash: str) -> bool:
        kid_hash = index.kid_hash(kid)
        if (subject_hash, kid_hash) in self._root_tombstones:
            return True
        async with self.database.connect() as conn:
            return await store.kid_tombstoned(conn, kid_hash)

    async def _purge_resurrected(self, kid: str) -> None:
        """A tombstoned key found in the store came back from a backup: destroy it again."""
        async with self.database.begin() as conn:
            await store.delete_tokens(conn, [kid])
            removed = await store.delete_subject_key(conn, kid)
        if removed:
            logger.warning("removed a subject key that an erasure had destroyed (restored from a backup?)")

    def _check_cache(self) -> None:
        if self.cache_fresh is not None and not self.cache_fresh():
            self._subjects.clear()  # an erasure may have been missed: every key comes from the store

    async def _writer(self, subject: str) -> SubjectCipher:
        """The subject's current key, created on first use (one row per subject)."""
        return (await self._writer_entry(subject)).cipher

    async def _writer_entry(self, subject: str) -> _SubjectEntry:
        """`_writer`'s cache entry (the key with its sealer)."""

        async def load() -> _SubjectEntry:
            index = await self._index_keys()
            subject_hash = index.subject_hash(subject)
            for _attempt in range(3):
                async with self.database.connect() as conn:
                    row = await store.subject_key_by_subject(conn, self.tenant, subject_hash)
                if row is not None and await self._erased(index, row.kid, subject_hash):
                    await self._purge_resurrected(row.kid)
                    row = None
                if row is not None:
                    entry = _SubjectEntry(
                        subject, SubjectCipher(await self._unwrap_subject_key(row), row.kid), self.tenant
                    )
                    self._subjects.put("k:" + row.kid, entry)
                    return entry
                primary = (await self._primary_generation()).generation
                kid, key = new_kid(), os.urandom(32)
                wrapped = await self._wrap_subject_key(key, kid, subject_hash, primary)
                async with self.database.begin() as conn:
                    created = await store.insert_subject_key(
                        conn,
                        kid=kid,
                        tenant=self.tenant,
                        subject_hash=subject_hash,
                        generation=primary,
                        wrapped=wrapped,
                    )
                if created:
                    entry = _SubjectEntry(subject, SubjectCipher(key, kid), self.tenant)
                    self._subjects.put("k:" + kid, entry)
                    return entry
            raise DecryptionFailed("the subject key could not be created")  # pragma: no cover

        self._check_cache()
        return await self._subjects.get("s:" + subject, load)

    async def _reader(self, kid: str, subject: str) -> SubjectCipher:
        """The key an envelope names, refused when it was erased or belongs to someone else."""

        async def load() -> _SubjectEntry:
            index = await self._index_keys()
            subject_hash = index.subject_hash(subject)
            async with self.database.connect() as conn:
                row = await store.subject_key_by_kid(conn, kid)
                subject_erased = row is None and await store.subject_tombstoned(conn, self.tenant, subject_hash)
            if row is not None and await self._erased(index, kid, row.subject_hash):
                await self._purge_resurrected(kid)
                raise SubjectErased()
            if row is None:
                if subject_erased or await self._erased(index, kid, subject_hash):
                    raise SubjectErased()
                raise DecryptionFailed("the value names a key this service does not hold")
            if row.tenant != self.tenant or row.subject_hash != subject_hash:
                raise DecryptionFailed("the value does not belong to this field and subject, or was altered")
            return _SubjectEntry(subject, SubjectCipher(await self._unwrap_subject_key(row), kid), self.tenant)

        self._check_cache()
        entry = await self._subjects.get("k:" + kid, load)
        if entry.subject != subject:
            raise DecryptionFailed("the value does not belong to this field and subject, or was altered")
        return entry.cipher

    # -- field operations ----------------------------------------------------------------

    async def encrypt(self, value: str, *, category: str, subject: str) -> str:
        """Randomised pe1 envelope. An envelope passed in is checked and never encrypted twice."""
        return await self._seal(value, RANDOMISED, category=category, subject=subject)

    async def encrypt_deterministic(self, value: str, *, category: str, subject: str) -> str:
        """Deterministic pd1 envelope: equal values of one subject and category compare equal."""
        return await self._seal(value, DETERMINISTIC, category=category, subject=subject)

    async def _seal(self, value: str, kind: str, *, category: str, subject: str) -> str:
        _check_context(category=category, subject=subject)
        if is_envelope(value):
            plaintext = await self.decrypt(value, category=category, subject=subject)
            if value.startswith(kind + "."):
                return value
            value = plaintext
        cipher = await self._writer(subject)
        if kind == RANDOMISED:
            return cipher.seal(value, tenant=self.tenant, category=category, subject=subject)
        return cipher.seal_deterministic(value, tenant=self.tenant, category=category, subject=subject)

    async def subject_sealer(self, subject: str) -> SubjectSealer:
        """The subject's key, loaded once, to seal many fresh clear values without an await each."""
        _check_context(subject=subject)
        return (await self._writer_entry(subject)).sealer

    def cached_sealer(self, subject: str) -> SubjectSealer | None:
        """`subject_sealer` without an await when the subject's key is cached and the cache is trusted;
        None sends the caller to `subject_sealer` (which loads the key, or clears an untrusted cache)."""
        if type(subject) is not str or not subject or len(subject) > _MAX_CONTEXT:
            _check_context(subject=subject)  # refuses it (the common case above costs no call)
        if self.cache_fresh is not None and not self.cache_fresh():
            return None
        entry = self._subjects.peek("s:" + subject)
        return entry.sealer if entry is not None else None

    async def decrypt(self, token: str, *, category: str, subject: str) -> str:
        """Open a pe1/pd1 envelope bound to this tenant, category and subject; fails closed."""
        _check_context(category=category, subject=subject)
        if not isinstance(token, str):
            raise DecryptionFailed("the value is not a well-formed envelope")
        envelope = parse_envelope(token)
        cipher = await self._reader(envelope.kid, subject)
        return cipher.open(envelope, tenant=self.tenant, category=category, subject=subject)

    async def blind_index(self, value: str, *, category: str) -> str:
        """Keyed HMAC of the normalised value under a per-category tenant key (equality lookups)."""
        _check_context(category=category)
        return (await self._index_keys()).blind_index(value, category)

    async def tokenise(self, value: str, *, category: str, subject: str) -> str:
        """A random `tok_...` reference; the value stays in the vault table, encrypted for the subject."""
        _check_context(category=category, subject=subject)
        if is_token(value):
            await self.detokenise(value, category=category, subject=subject)
            return value
        envelope = await self.encrypt(value, category=category, subject=subject)
        token = TOKEN_PREFIX + b64url_encode(os.urandom(16))
        async with self.database.begin() as conn:
            await store.insert_token(
                conn,
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                tenant=self.tenant,
                kid=parse_envelope(envelope).kid,
                envelope=envelope,
                category=category,
            )
        return token

    async def tokenise_shaped(
        self, value: str, *, category: str, subject: str, shape: TokenShape, deterministic: bool = False
    ) -> str:
        """A format-shaped vault token (crypto/shaped.py). Deterministic ones are the same for the same
        subject, category and value (keyed lookup), so the shop can still look the value up."""
        _check_context(category=category, subject=subject)
        if await self._shaped_envelope(value) is not None:
            await self.detokenise_shaped(value, category=category, subject=subject)
            return value  # already one of ours: never tokenised twice
        lookup = None
        if deterministic:
            index = await self._index_keys()
            material = f"{index.subject_hash(subject)}|{shape.format}|{index.blind_index(value, category)}"
            lookup = hashlib.sha256(material.encode()).hexdigest()
            async with self.database.connect() as conn:
                found = await store.token_by_lookup(conn, self.tenant, lookup)
            if found is not None:
                token = await self._token_for_hash(found, subject)
                if token is not None:
                    return token
        envelope = await self.encrypt(value, category=category, subject=subject)
        kid = parse_envelope(envelope).kid
        for _ in range(8):  # a short random token can collide with an existing one: draw again
            token = shaped_token(shape, value)
            sealed_token = await self.encrypt(token, category=SHAPED_TOKEN_CATEGORY, subject=subject) if lookup else ""
            async with self.database.begin() as conn:
                stored = await store.insert_token_once(
                    conn,
                    token_hash=hashlib.sha256(token.encode()).hexdigest(),
                    tenant=self.tenant,
                    kid=kid,
                    envelope=f"{envelope} {sealed_token}" if lookup else envelope,
                    category=category,
                    lookup=lookup,
                )
            if stored:
                return token
            if lookup is not None:
                async with self.database.connect() as conn:
                    raced = await store.token_by_lookup(conn, self.tenant, lookup)
                if raced is not None and (existing := await self._token_for_hash(raced, subject)) is not None:
                    return existing
        raise PrivacyError("token_space_exhausted", "No free token of this shape could be drawn.", 503)

    async def _token_for_hash(self, token_hash: str, subject: str) -> str | None:
        """The token itself, for a deterministic vault row (sealed beside the value for re-issuing)."""
        stored = await self._stored_by_hash(token_hash)
        if stored is None or " " not in stored:
            return None
        return await self.decrypt(stored.split(" ", 1)[1], category=SHAPED_TOKEN_CATEGORY, subject=subject)

    async def _stored_by_hash(self, token_hash: str) -> str | None:
        async with self.database.connect() as conn:
            return await store.token_envelope(conn, self.tenant, token_hash)

    async def _shaped_envelope(self, token: str) -> str | None:
        return await self._stored_by_hash(hashlib.sha256(token.encode()).hexdigest())

    async def detokenise_shaped(self, token: str, *, category: str, subject: str) -> str | None:
        """The value behind a shaped token; None when the vault has no such token (a plain value)."""
        _check_context(category=category, subject=subject)
        stored = await self._shaped_envelope(token)
        if stored is None:
            return None
        envelope = stored.split(" ", 1)[0]
        return await self.decrypt(envelope, category=category, subject=subject)

    async def detokenise(self, token: str, *, category: str, subject: str) -> str:
        _check_context(category=category, subject=subject)
        if not is_token(token):
            raise DecryptionFailed("the value is not a token")
        async with self.database.connect() as conn:
            envelope = await store.token_envelope(conn, self.tenant, hashlib.sha256(token.encode()).hexdigest())
            if envelope is None:
                index = await self._index_keys()
                if await store.subject_tombstoned(conn, self.tenant, index.subject_hash(subject)):
                    raise SubjectErased()
                raise DecryptionFailed("the token is unknown")
        return await self.decrypt(envelope, category=category, subject=subject)

    async def subject_holdings(self, subject: str) -> SubjectHoldings:
        """What the key store holds for a subject (an export lists it; erasure proves it is gone)."""
        _check_context(subject=subject)
        index = await self._index_keys()
        subject_hash = index.subject_hash(subject)
        async with self.database.connect() as conn:
            rows = await store.subject_keys_for_hash(conn, self.tenant, subject_hash)
            tokens = await store.tokens_of_kids(conn, [r.kid for r in rows])
            erased = await store.subject_tombstoned(conn, self.tenant, subject_hash)
        return SubjectHoldings(
            key_created_at=min((r.created_at for r in rows), default=None),
            tokens=tuple(tokens),
            erased=erased,
        )

    # -- erasure -------------------------------------------------------------------------

    def _marker(self, subject_hash: str, kid_hash: str | None) -> str:
        return f"{MARKER_PREFIX}:{self._tenant_tag}:{subject_hash}:{kid_hash or '-'}"

    def _parse_marker(self, marker: str) -> tuple[str, str | None] | None:
        parts = marker.split(":")
        if len(parts) != 4 or parts[0] != MARKER_PREFIX or parts[1] != self._tenant_tag:
            return None
        return parts[2], (None if parts[3] == "-" else parts[3])

    async def erase_subject(self, subject: str) -> ErasureResult:
        """Crypto-shred: destroy the subject's key and vault tokens, leave tombstones on both sides."""
        _check_context(subject=subject)
        index = await self._index_keys()
        subject_hash = index.subject_hash(subject)
        async with self.database.connect() as conn:
            rows = await store.subject_keys_for_hash(conn, self.tenant, subject_hash)
        entries: list[tuple[str, str | None]] = [(subject_hash, index.kid_hash(r.kid)) for r in rows] or [
            (subject_hash, None)
        ]
        # Root side first: a crash after this line leaves a tombstone whose replay finishes the job.
        recorded = True
        for entry in entries:
            recorded = await self.provider.record_tombstone(self._marker(*entry)) and recorded
            self._root_tombstones.add(entry)
        async with self.database.begin() as conn:
            kids = await store.delete_subject_keys(conn, self.tenant, subject_hash)
            tokens = await store.delete_tokens(conn, kids)
            late: list[tuple[str, str | None]] = [
                (subject_hash, index.kid_hash(k)) for k in kids if (subject_hash, index.kid_hash(k)) not in entries
            ]
            await store.insert_tombstones(conn, self.tenant, entries + late)
            await record_erasure(conn, self.tenant, subject_hash)  # every instance follows this epoch
        for entry in late:
            recorded = await self.provider.record_tombstone(self._marker(*entry)) and recorded
            self._root_tombstones.add(entry)
        self._subjects.discard("s:" + subject)
        for kid in kids + [r.kid for r in rows]:
            self._subjects.discard("k:" + kid)
        for listener in self.erasure_listeners:
            try:
                await listener(subject_hash)
            except Exception as exc:  # the key is gone: a failed broadcast must not undo the answer
                logger.warning("erasure broadcast failed (%s); instances catch up from the store", type(exc).__name__)
        return ErasureResult(
            keys_destroyed=len(kids),
            tokens_destroyed=tokens,
            tombstones_written=len(entries) + len(late),
            root_side_recorded=recorded,
            erased_at=datetime.now(UTC),
        )

    async def evict_erased(self, subject_hash: str) -> int:
        """Drop cached keys of a subject erased elsewhere (another instance told us its hash)."""
        index = await self._index_keys()
        return self._subjects.discard_where(lambda _key, entry: index.subject_hash(entry.subject) == subject_hash)

    async def _replay_root_tombstones(self) -> int:
        """Bring root-side tombstones back into the store and destroy any key they name."""
        markers = {m for m in map(self._parse_marker, await self.provider.tombstones()) if m is not None}
        self._root_tombstones = set(markers)
        if not markers:
            return 0
        index = await self._index_keys()
        async with self.database.begin() as conn:
            known = await store.tombstone_entries(conn, self.tenant)
            missing = markers - known
            await store.insert_tombstones(conn, self.tenant, sorted(missing, key=str))
            revived: list[str] = []
            for subject_hash in {s for s, _ in markers}:
                for row in await store.subject_keys_for_hash(conn, self.tenant, subject_hash):
                    if (subject_hash, index.kid_hash(row.kid)) in markers:
                        revived.append(row.kid)
                        await store.delete_subject_key(conn, row.kid)
            await store.delete_tokens(conn, revived)
        if missing or revived:
            logger.warning(
                "replayed %d erasure tombstone(s) from the root side and destroyed %d restored key(s)",
                len(missing),
                len(revived),
            )
        return len(missing)

    # -- rotation ------------------------------------------------------------------------

    async def rotate(self) -> RotationResult:
        """New root version (where the provider has versions) and a new primary key generation."""
        await self.provider.refresh()
        previous = await self._primary_generation()
        await self.provider.rotate()
        row = await self._ensure_tenant_key(store.KEK, previous.generation + 1)
        async with self.database.connect() as conn:
            counts = await store.subject_key_counts(conn, self.tenant)
        pending = sum(n for g, n in counts.items() if g != row.generation)
        logger.info("key generation %d is primary (root version %s)", row.generation, row.root_version)
        return RotationResult(row.generation, row.root_version, previous.generation, pending)

    async def rewrap(
        self, *, batch_size: int = 500, progress: Callable[[int, int], None] | None = None
    ) -> RewrapResult:
        """Move every subject key to the primary generation, batch by batch; rerun to resume.

        Shop data is not touched: envelopes name the subject key, which keeps its value.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        await self.provider.refresh()
        primary = await self._primary_generation()
        async with self.database.connect() as conn:
            counts = await store.subject_key_counts(conn, self.tenant)
        total = sum(n for g, n in counts.items() if g != primary.generation)
        done = failed = 0
        cursor = ""
        while True:
            async with self.database.connect() as conn:
                batch = await store.subject_keys_not_on(
                    conn, self.tenant, primary.generation, after_kid=cursor, limit=batch_size
                )
            if not batch:
                break
            updates: list[tuple[store.SubjectKeyRow, bytes]] = []
            for row in batch:
                try:
                    key = await self._unwrap_subject_key(row)
                except DecryptionFailed:
                    failed += 1
                    continue
                updates.append((row, await self._wrap_subject_key(key, row.kid, row.subject_hash, primary.generation)))
            async with self.database.begin() as conn:
                for row, wrapped in updates:
                    if await store.rewrap_subject_key(
                        conn,
                        kid=row.kid,
                        old_generation=row.generation,
                        new_generation=primary.generation,
                        wrapped=wrapped,
                    ):
                        done += 1
            cursor = batch[-1].kid
            if progress is not None:
                progress(done, total)
        tenant_rewrapped = await self._rewrap_tenant_keys(primary.root_version)
        async with self.database.connect() as conn:
            counts = await store.subject_key_counts(conn, self.tenant)
        remaining = sum(n for g, n in counts.items() if g != primary.generation)
        return RewrapResult(primary.generation, primary.root_version, done, failed, remaining, tenant_rewrapped)

    async def _rewrap_tenant_keys(self, root_version: str) -> int:
        """Older tenant keys (and the index key) rewrapped under the primary root version."""
        async with self.database.connect() as conn:
            rows = await store.tenant_key_rows(conn, self.tenant, store.KEK)
            rows += await store.tenant_key_rows(conn, self.tenant, store.INDEX)
        count = 0
        for row in rows:
            if row.root_version == root_version:
                continue
            wrapped = await self.provider.rewrap(
                WrappedKey(row.root_version, row.wrapped), context=self._context(row.purpose, row.generation)
            )
            async with self.database.begin() as conn:
                await store.rewrap_tenant_key(
                    conn,
                    tenant=self.tenant,
                    purpose=row.purpose,
                    generation=row.generation,
                    root_version=wrapped.root_version,
                    wrapped=wrapped.blob,
                )
            count += 1
        return count

    async def status(self) -> KeyStatus:
        await self.provider.refresh()
        async with self.database.connect() as conn:
            keks = await store.tenant_key_rows(conn, self.tenant, store.KEK)
            index_row = await store.tenant_key(conn, self.tenant, store.INDEX, 0)
            counts = await store.subject_key_counts(conn, self.tenant)
            tombstones = await store.tombstone_count(conn, self.tenant)
            tokens = await store.token_count(conn, self.tenant)
        primary = keks[-1].generation if keks else 0
        generations = tuple(
            GenerationStatus(
                r.generation,
                r.root_version,
                r.generation == primary,
                counts.get(r.generation, 0),
                r.created_at,
            )
            for r in keks
        )
        return KeyStatus(
            provider=self.provider.name,
            root=self.provider.description,
            tenant=self.tenant,
            root_versions=await self.provider.root_versions(),
            primary_generation=primary,
            generations=generations,
            index_key_root_version=index_row.root_version if index_row else "",
            pending_rewrap=sum(n for g, n in counts.items() if g != primary),
            tombstones=tombstones,
            tokens=tokens,
        )
