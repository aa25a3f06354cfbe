//! The Lua scripts of the Redis store, one per atomic step.
//!
//! Every script touches exactly one key (`KEYS[1]`), so it runs on that key's cluster slot and
//! Redis executes it atomically: no other command on that identity (or owner bucket)
//! interleaves. They are sent with `EVALSHA` by [`super::command::ScriptCall`], which loads
//! them (`SCRIPT LOAD`) where a server answers that it has not seen them (`NOSCRIPT`).
//!
//! Records are read without a decoder thanks to the fixed header of `codec` (1-based Lua
//! positions): `expires_at` is `struct.unpack('<I8', rec, 21)`, `updated_at` is at 13,
//! `created_at` spans bytes 5..12, and the address field (2-byte length + token) starts at 29;
//! an APNs alert token, when flag bit 1 of byte 4 says there is one, follows the app id.
//! Owner entries (`owners`) hold their expiry in seconds at 1 (`struct.unpack('<I4', v, 1)`)
//! and the holder, `identity \0 device_id`, from 5 on; scripts compare it in milliseconds.
//! Times are milliseconds; Lua numbers are doubles, exact up to 2^53 ms (year 287,000).

use redis::Script;
use std::sync::LazyLock;

/// `settle_hash(key, now, expiry)`: drops a hash's fields whose value has expired (by
/// `expiry(value)`, in ms) and sets the key's TTL to the latest expiry among the rest. Both
/// preludes build on it: identity hashes and owner buckets expire the same way.
macro_rules! settle_hash_lua {
    () => {
        r#"
local function settle_hash(key, now, expiry)
  local all = redis.call('HGETALL', key)
  local latest = 0
  for i = 1, #all, 2 do
    local expires = expiry(all[i + 1])
    if expires <= now then
      redis.call('HDEL', key, all[i])
    elseif expires > latest then
      latest = expires
    end
  end
  if latest > now then
    redis.call('PEXPIRE', key, latest - now)
  end
end
"#
    };
}

/// Helpers shared by the scripts that need them, prepended to their bodies.
const PRELUDE: &str = concat!(
    settle_hash_lua!(),
    r#"
local function expires_of(rec)
  return (struct.unpack('<I8', rec, 21))
end
local function updated_of(rec)
  return (struct.unpack('<I8', rec, 13))
end
local function address_of(rec)
  local len = struct.unpack('<I2', rec, 29)
  return string.sub(rec, 29, 30 + len)
end
-- The APNs alert token behind the app id (flag bit 1 of byte 4), in the address field's
-- form (2-byte length + token), or false. Web Push records never carry one.
local function alert_of(rec)
  if string.byte(rec, 4) % 4 < 2 then
    return false
  end
  local at = 31 + struct.unpack('<I2', rec, 29)
  at = at + 1 + string.byte(rec, at)
  local len = string.byte(rec, at)
  return struct.pack('<I2', len) .. string.sub(rec, at + 1, at + len)
end
-- Whether a record holds a token, as its token or as its alert token.
local function holds(rec, address)
  return address_of(rec) == address or alert_of(rec) == address
end
-- Drops the expired fields of the identity hash and sets the key's TTL to the latest expiry
-- among the rest, so Redis reclaims the key by itself once its last device expires.
local function settle(key, now)
  settle_hash(key, now, expires_of)
end
"#
);

/// Registers or refreshes one device on its identity hash.
///
/// `KEYS[1]` identity key; `ARGV`: device id, new record, its address field, now, device limit.
///
/// Guarantees, all in one atomic step: expired fields are pruned; a NEW device is refused with
/// `{-1, nil}` when the identity already has `limit` live devices (and then nothing is written); a
/// refresh keeps the old `created_at` (bytes 5..12 spliced into the new record); another device
/// of the same identity holding the same token is deleted (one token, one device); the key's
/// TTL becomes the latest expiry among its live devices. Returns `{1, nil}` for a new device, or
/// `{0, old_record}` for a refresh so the caller can release the old token's owner entry.
pub static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local key, device, rec, address = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local all = redis.call('HGETALL', key)
local old = false
local live, latest = 0, 0
local doomed = {}
for i = 1, #all, 2 do
  local field, r = all[i], all[i + 1]
  local expires = expires_of(r)
  if expires <= now then
    table.insert(doomed, field)
  elseif field == device then
    old = r
  elseif address_of(r) == address then
    table.insert(doomed, field)
  else
    live = live + 1
    if expires > latest then latest = expires end
  end
end
if not old and live >= limit then
  return {-1, false}
end
for _, field in ipairs(doomed) do
  redis.call('HDEL', key, field)
end
if old then
  rec = string.sub(rec, 1, 4) .. string.sub(old, 5, 12) .. string.sub(rec, 13)
end
redis.call('HSET', key, device, rec)
local expires = expires_of(rec)
if expires > latest then latest = expires end
if latest > now then
  redis.call('PEXPIRE', key, latest - now)
else
  redis.call('DEL', key)
end
if old then
  return {0, old}
end
return {1, false}
"#
    ))
});

/// Deletes one device if its record still holds a given token (as its token or its APNs
/// alert token) and is live.
///
/// `KEYS[1]` identity key; `ARGV`: device id, address field, now, and an optional bound
/// (empty for none) the record's `updated_at` must not exceed.
///
/// Used to take a token from its previous owner (no bound: whoever holds it now loses it) and
/// for dead-token verdicts (bound = the verdict's time: a device that registered again after
/// the verdict keeps its registration). Checking the token inside the script makes both safe
/// against a concurrent re-registration with a new token. Returns 1 if it deleted, else 0.
pub static DELETE_IF_HOLDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local key, device, address = KEYS[1], ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local rec = redis.call('HGET', key, device)
if not rec or not holds(rec, address) or expires_of(rec) <= now then
  return 0
end
if ARGV[4] ~= '' and updated_of(rec) > tonumber(ARGV[4]) then
  return 0
end
redis.call('HDEL', key, device)
settle(key, now)
return 1
"#
    ))
});

/// Sets one device's environment byte if its record still holds a given token, is live and
/// was not registered again since a given time.
///
/// `KEYS[1]` identity key; `ARGV`: device id, address field, the time of the finding, the
/// environment byte (`codec`: 0 production, 1 sandbox; at Lua position 3). The byte is
/// spliced in place: the record's length, expiry and owner entry do not change, so neither
/// does the key's TTL. Returns 1 if it changed the record, else 0.
pub static SET_ENVIRONMENT_IF_HOLDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local key, device, address = KEYS[1], ARGV[1], ARGV[2]
local at, environment = tonumber(ARGV[3]), string.char(tonumber(ARGV[4]))
local rec = redis.call('HGET', key, device)
if not rec or address_of(rec) ~= address or expires_of(rec) <= at or updated_of(rec) > at then
  return 0
end
if string.sub(rec, 3, 3) == environment then
  return 0
end
redis.call('HSET', key, device, string.sub(rec, 1, 2) .. environment .. string.sub(rec, 4))
return 1
"#
    ))
});

/// Deletes one device's registration.
///
/// `KEYS[1]` identity key; `ARGV`: device id, now. Returns the deleted record when it was live
/// (so the caller can release its token's owner entry), otherwise nil; either way the key's TTL
/// is settled to its remaining devices.
pub static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PRELUDE}{}",
        r#"
local key, device = KEYS[1], ARGV[1]
local now = tonumber(ARGV[2])
local rec = redis.call('HGET', key, device)
if not rec then
  return false
end
redis.call('HDEL', key, device)
settle(key, now)
if expires_of(rec) > now then
  return rec
end
return false
"#
    ))
});

/// Deletes the whole identity hash and returns what it held (`field, record, ...`), so the
/// caller can count the live registrations and release their owner entries. Atomic: a register
/// running concurrently lands either wholly before (and is revoked) or wholly after.
pub static REVOKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
"#,
    )
});

/// Helpers of the owner-bucket scripts, prepended to their bodies.
const OWNER_PRELUDE: &str = concat!(
    settle_hash_lua!(),
    r#"
-- An entry's expiry in milliseconds (stored as whole seconds).
local function entry_expires(entry)
  return (struct.unpack('<I4', entry, 1)) * 1000
end
-- Drops the bucket's expired entries and sets its TTL to the latest expiry among the rest.
-- Redis 7.0 has no per-field TTL, so this is how an entry goes away: a stale one lives until
-- its bucket is next written, or until the bucket's TTL (its latest entry's expiry) ends.
-- A bucket left without entries is deleted by Redis, as any empty hash.
local function settle_bucket(key, now)
  settle_hash(key, now, entry_expires)
end
"#
);

/// Claims a token for a device: writes its owner entry and returns the previous holder.
///
/// `KEYS[1]` the token's bucket; `ARGV`: the entry's field, the new entry (`expires_at` ++
/// holder), now. In one atomic step: the bucket's expired entries are pruned, the entry is set,
/// and the bucket's TTL becomes the latest expiry among its entries. Returns the previous
/// holder (`identity \0 device_id`) if its entry was live, else nil: an expired entry is no
/// owner, the way a per-token owner key with a TTL vanished with its registration.
/// Set-and-return-previous in one step is what makes the last claim win (module doc,
/// "Registering, step by step").
pub static CLAIM_OWNER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER_PRELUDE}{}",
        r#"
local key, field, entry = KEYS[1], ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local all = redis.call('HGETALL', key)
local previous = false
local latest = entry_expires(entry)
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  local expires = entry_expires(v)
  if expires <= now then
    if f ~= field then
      redis.call('HDEL', key, f)
    end
  elseif f == field then
    previous = string.sub(v, 5)
  elseif expires > latest then
    latest = expires
  end
end
redis.call('HSET', key, field, entry)
redis.call('PEXPIRE', key, math.max(latest - now, 1))
return previous
"#
    ))
});

/// Deletes a token's owner entry only if it still names the same holder.
///
/// `KEYS[1]` the token's bucket; `ARGV`: the entry's field, the holder being released
/// (`identity \0 device_id`), now. The compare-and-delete keeps a release from freeing a
/// token another identity took meanwhile. After a delete the bucket is settled (pruned, TTL
/// to its latest entry). Returns 1 if it deleted.
pub static RELEASE_OWNER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{OWNER_PRELUDE}{}",
        r#"
local key, field, holder = KEYS[1], ARGV[1], ARGV[2]
local entry = redis.call('HGET', key, field)
if not entry or string.sub(entry, 5) ~= holder then
  return 0
end
redis.call('HDEL', key, field)
settle_bucket(key, tonumber(ARGV[3]))
return 1
"#
    ))
});
