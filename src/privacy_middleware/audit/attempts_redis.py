"""The attempt ledger shared by every instance through Redis: the same rules as
`attempts.reserve_book`, each decision one Lua script (atomic on the server)."""

from __future__ import annotations

from redis.asyncio import Redis

from .attempts import AttemptKeys, Lockout, LoginLimits, Outcome, Reservation

# KEYS: pair, account, lock, ip, spray
# ARGV: mode (peek|reserve|force), has_account, member, pair_limit, pair_ms, account_limit, account_ms,
#       wait_increment_ms, max_wait_ms, ip_limit, ip_ms, spray_limit, spray_ms
_RESERVE = """
local mode = ARGV[1]
local has_account = ARGV[2] == '1'
local reason, ttl = '', -1
local function consider(why, key)
  local left = redis.call('PTTL', key)
  if left > ttl then reason, ttl = why, left end
end
local function locked()
  reason, ttl = '', -1
  if has_account then
    if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[4]) then consider('account_ip', KEYS[1]) end
    if redis.call('EXISTS', KEYS[3]) == 1 then consider('account', KEYS[3]) end
  end
  if tonumber(redis.call('GET', KEYS[4]) or '0') > tonumber(ARGV[10]) then consider('ip', KEYS[4]) end
  if redis.call('SCARD', KEYS[5]) > tonumber(ARGV[12]) then consider('password_spraying', KEYS[5]) end
  return reason ~= ''
end
if mode == 'peek' or (mode == 'reserve' and locked()) then
  if mode == 'peek' then locked() end
  return {0, reason, ttl, 0, 0, 0, 0, 0}
end
local pair, account, spray, new_member = 0, 0, 0, 0
if has_account then
  pair = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  account = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
  local limit = tonumber(ARGV[6])
  if account >= limit then
    local wait = math.min(tonumber(ARGV[9]), tonumber(ARGV[8]) * (account - limit + 1))
    redis.call('SET', KEYS[3], 1, 'PX', math.max(1, math.floor(wait)))
  end
  new_member = redis.call('SADD', KEYS[5], ARGV[3])
  if redis.call('PTTL', KEYS[5]) < 0 then redis.call('PEXPIRE', KEYS[5], ARGV[13]) end
  spray = redis.call('SCARD', KEYS[5])
end
local ip = redis.call('INCR', KEYS[4])
if ip == 1 or redis.call('PTTL', KEYS[4]) < 0 then redis.call('PEXPIRE', KEYS[4], ARGV[11]) end
locked()
return {1, reason, ttl, pair, account, ip, spray, new_member}
"""

# KEYS: pair, account, lock, ip, spray
# ARGV: outcome (success|void), reserved, has_account, member, new_member, reset_on_success
_SETTLE = """
local function decr(key)
  if tonumber(redis.call('GET', key) or '0') <= 1 then redis.call('DEL', key) else redis.call('DECR', key) end
end
local reserved = ARGV[2] == '1'
if reserved then
  decr(KEYS[4])
  if ARGV[5] == '1' then redis.call('SREM', KEYS[5], ARGV[4]) end
end
if ARGV[3] ~= '1' then return 0 end
if ARGV[1] == 'success' and ARGV[6] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
elseif reserved then
  decr(KEYS[1])
  decr(KEYS[2])
end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisLedger:
    def __init__(self, client: Redis, *, prefix: str) -> None:
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    def _keys(self, keys: AttemptKeys) -> list[str]:
        p = self._prefix + "{login}"  # one hash tag: a Redis Cluster runs the script on one slot
        placeholder = p + "-"  # never written: stands in for the account keys of a nameless attempt
        return [
            p + keys.pair if keys.pair else placeholder,
            p + keys.account if keys.account else placeholder,
            p + keys.lock if keys.lock else placeholder,
            p + keys.ip,
            p + keys.spray,
        ]

    async def _run(self, mode: str, keys: AttemptKeys, limits: LoginLimits) -> Reservation:
        args = [
            mode,
            "1" if keys.has_account else "0",
            keys.member or "",
            limits.pair_failures,
            _ms(limits.pair_block_seconds),
            limits.account_failures,
            _ms(limits.account_reset_seconds),
            _ms(limits.account_wait_increment),
            _ms(limits.account_max_wait),
            limits.ip_failures,
            _ms(limits.ip_window_seconds),
            limits.spray_accounts,
            _ms(limits.spray_window_seconds),
        ]
        granted, reason, ttl, pair, account, ip, spray, new_member = await self._reserve(
            keys=self._keys(keys), args=args
        )
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        lockout = Lockout(reason, max(1, -(-int(ttl) // 1000))) if reason else None
        return Reservation(
            granted=bool(int(granted)),
            lockout=lockout,
            pair=int(pair),
            account=int(account),
            ip=int(ip),
            spray=int(spray),
            new_member=bool(int(new_member)),
        )

    async def peek(self, keys: AttemptKeys, limits: LoginLimits) -> Lockout | None:
        return (await self._run("peek", keys, limits)).lockout

    async def reserve(self, keys: AttemptKeys, limits: LoginLimits, *, force: bool = False) -> Reservation:
        return await self._run("force" if force else "reserve", keys, limits)

    async def settle(
        self, keys: AttemptKeys, reservation: Reservation | None, outcome: Outcome, limits: LoginLimits
    ) -> None:
        reserved = reservation is not None and reservation.granted
        if outcome == "failure" or (outcome == "void" and not reserved):
            return
        await self._settle(
            keys=self._keys(keys),
            args=[
                outcome,
                "1" if reserved else "0",
                "1" if keys.has_account else "0",
                keys.member or "",
                "1" if reservation is not None and reservation.new_member else "0",
                "1" if limits.reset_on_success else "0",
            ],
        )
