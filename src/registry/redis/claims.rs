//! Call-event leases in Redis: one hash per event, changed only by the Lua scripts below, each
//! the same rule as [`crate::registry::lease`] in one atomic step.
//!
//! The hash, `e:<tenant>:{<digest>}` (see [`super::keys::event_key`]), holds `o` (the owning
//! node), `l` (until when its lease runs, UNIX ms), `d` (the event's deadline), `f` (`1` once
//! the event finished) and one field `x:<device id>` per device whose push has an outcome. It
//! expires at the deadline (`PEXPIREAT`), so leases need no sweeper. Every script touches
//! only that key; its hash tag keeps any later key of the same event on the same cluster
//! slot. Times come from the caller, as everywhere in this store; a lease of seconds
//! tolerates the milliseconds NTP leaves between nodes.

use super::command::ScriptCall;
use super::pipelined::Bookkeeping;
use super::{RedisStore, keys};
use crate::registry::lease::{Claim, LeaseTerms, Progress};
use crate::registry::store::StoreError;
use crate::vocab::UnixMillis;
use redis::Script;
use redis::aio::ConnectionLike;
use std::sync::LazyLock;

/// Reads the event's hash into `rec` (plain fields) and `done` (device ids with an outcome).
const READ_LUA: &str = r#"
local function read(key)
  local all = redis.call('HGETALL', key)
  local rec, done = {}, {}
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'x:' then
      done[#done + 1] = string.sub(f, 3)
    else
      rec[f] = all[i + 1]
    end
  end
  return rec, done
end
local function ms(n)
  return string.format('%d', n)
end
"#;

/// `done_fields(first)`: the fields `x:<device id>` = `1` for the device ids from `ARGV[first]`
/// on, as one flat list; `hset_all` writes such a list with one `HSET` per 1,000 elements
/// (`unpack` has a limit of a few thousand values; `max_devices_per_identity` has none). An
/// event's outcomes are recorded together: one `HSET` per device was most of the commands
/// Redis ran per ring.
const DONE_LUA: &str = r#"
local function done_fields(first)
  local fields = {}
  for i = first, #ARGV do
    fields[#fields + 1] = 'x:' .. ARGV[i]
    fields[#fields + 1] = '1'
  end
  return fields
end
local function hset_all(key, fields)
  for i = 1, #fields, 1000 do
    redis.call('HSET', key, unpack(fields, i, math.min(i + 999, #fields)))
  end
end
"#;

/// Claims an event. `KEYS[1]` the event; `ARGV`: node, lease (ms), deadline, now, may take
/// over (`1`/`0`). Returns `{'owned'}`, `{'taken', previous owner, '0', done...}`, `{'held',
/// owner, finished, done...}` or `{'lapsed', owner, '0'}` (see `lease::acquire`).
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{READ_LUA}{}",
        r#"
local key, node = KEYS[1], ARGV[1]
local lease, deadline, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rec, done = read(key)
if rec.o == nil or tonumber(rec.d) <= now then
  if rec.o ~= nil or #done > 0 then
    redis.call('DEL', key)
  end
  redis.call('HSET', key, 'o', node, 'l', ms(math.min(now + lease, deadline)), 'd', ARGV[3], 'f', '0')
  redis.call('PEXPIREAT', key, ARGV[3])
  return {'owned'}
end
if rec.f == '1' or (tonumber(rec.l) > now and rec.o ~= node) then
  return {'held', rec.o, rec.f, unpack(done)}
end
if ARGV[5] ~= '1' and rec.o ~= node then
  return {'lapsed', rec.o, '0'}
end
redis.call('HSET', key, 'o', node, 'l', ms(math.min(now + lease, tonumber(rec.d))))
return {'taken', rec.o, '0', unpack(done)}
"#
    ))
});

/// Records outcomes and renews the lease. `ARGV`: node, lease (ms), now, device ids... Returns
/// 1 while the node owns the event, else 0.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DONE_LUA}{}",
        r#"
local key, node = KEYS[1], ARGV[1]
local lease, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local o, d = unpack(redis.call('HMGET', key, 'o', 'd'))
if not o or tonumber(d) <= now then
  return 0
end
local fields = done_fields(4)
if o == node then
  fields[#fields + 1] = 'l'
  fields[#fields + 1] = string.format('%d', math.min(now + lease, tonumber(d)))
end
hset_all(key, fields)
return o == node and 1 or 0
"#
    ))
});

/// Records the last outcomes and marks the event finished if the node owns it. `ARGV`:
/// node, now, device ids...
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{DONE_LUA}{}",
        r#"
local key, node, now = KEYS[1], ARGV[1], tonumber(ARGV[2])
local o, d = unpack(redis.call('HMGET', key, 'o', 'd'))
if not o or tonumber(d) <= now then
  return 0
end
local fields = done_fields(3)
if o == node then
  fields[#fields + 1] = 'f'
  fields[#fields + 1] = '1'
end
hset_all(key, fields)
return 1
"#
    ))
});

/// Deletes the node's own unfinished claim. `ARGV`: node.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local o, f = unpack(redis.call('HMGET', KEYS[1], 'o', 'f'))
if o == ARGV[1] and f ~= '1' then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Turns the acquire script's answer into a [`Claim`].
fn claim_of(mut answer: Vec<String>) -> Result<Claim, StoreError> {
    let shape = |answer: &[String]| StoreError::Corrupt(format!("event lease answer {answer:?}"));
    if answer.first().map(String::as_str) == Some("owned") {
        return Ok(Claim::Owned {
            taken_over_from: None,
            done: Vec::new(),
        });
    }
    if answer.len() < 3 {
        return Err(shape(&answer));
    }
    let mut done = answer.split_off(3);
    done.sort_unstable();
    let (kind, owner, finished) = (&answer[0], answer[1].clone(), answer[2] == "1");
    match kind.as_str() {
        "taken" => Ok(Claim::Owned {
            taken_over_from: Some(owner),
            done,
        }),
        "held" => Ok(Claim::Held {
            owner,
            progress: Progress { done, finished },
        }),
        "lapsed" => Ok(Claim::Lapsed { owner }),
        _ => Err(shape(&answer)),
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Bookkeeping + Clone + Send + Sync + 'static,
{
    /// See [`crate::registry::Store::acquire_event`].
    pub(super) async fn acquire_lease(
        &self,
        tenant: &str,
        event_id: &str,
        terms: &LeaseTerms,
        now: UnixMillis,
    ) -> Result<Claim, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&ACQUIRE, keys::event_key(tenant, event_id));
        invocation
            .arg(&*terms.node)
            .arg(terms.lease_ms)
            .arg(terms.deadline)
            .arg(now)
            .arg(if terms.may_take_over { "1" } else { "0" });
        let answer: Vec<String> = self.run(invocation.run(&mut connection)).await?;
        claim_of(answer)
    }

    /// See [`crate::registry::Store::renew_event`].
    pub(super) async fn renew_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        lease_ms: u64,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&RENEW, keys::event_key(tenant, event_id));
        invocation.arg(node).arg(lease_ms).arg(now).arg(outcomes);
        let owned: i64 = self.run(invocation.run(&mut connection)).await?;
        Ok(owned == 1)
    }

    /// See [`crate::registry::Store::finish_event`].
    pub(super) async fn finish_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
        outcomes: &[String],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        // Nobody waits on its reply soon (the event's outcomes are answered already): it
        // leaves with the next command the router sends, usually the next call's claim, and
        // its reply comes back with that one's instead of waking the thread on its own.
        let mut connection = self.connection.for_bookkeeping();
        let mut invocation = ScriptCall::new(&FINISH, keys::event_key(tenant, event_id));
        invocation.arg(node).arg(now).arg(outcomes);
        let _: i64 = self.run(invocation.run(&mut connection)).await?;
        Ok(())
    }

    /// See [`crate::registry::Store::release_event`].
    pub(super) async fn release_lease(
        &self,
        tenant: &str,
        event_id: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = ScriptCall::new(&RELEASE, keys::event_key(tenant, event_id));
        invocation.arg(node);
        let _: i64 = self.run(invocation.run(&mut connection)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn script_answers_become_claims() {
        assert_eq!(
            claim_of(strings(&["owned"])).unwrap(),
            Claim::Owned {
                taken_over_from: None,
                done: vec![]
            }
        );
        assert_eq!(
            claim_of(strings(&["taken", "node-a", "0", "tablet", "phone"])).unwrap(),
            Claim::Owned {
                taken_over_from: Some("node-a".into()),
                done: strings(&["phone", "tablet"])
            }
        );
        assert_eq!(
            claim_of(strings(&["held", "node-a", "1"])).unwrap(),
            Claim::Held {
                owner: "node-a".into(),
                progress: Progress {
                    done: vec![],
                    finished: true
                }
            }
        );
        assert_eq!(
            claim_of(strings(&["lapsed", "node-a", "0"])).unwrap(),
            Claim::Lapsed {
                owner: "node-a".into()
            }
        );
        assert!(claim_of(strings(&["held"])).is_err());
        assert!(claim_of(strings(&["what", "a", "0"])).is_err());
    }
}
