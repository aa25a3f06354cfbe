//! The cluster's slot map, read from `CLUSTER SLOTS`: which master serves each slot, and
//! which nodes replicate them (the start-up settings check asks every node).

use super::route::SLOTS;
use redis::{ErrorKind, RedisError, RedisResult, Value};

/// A node's address as the cluster gives it.
pub type Address = (String, u16);

/// Which master serves each slot.
#[derive(Debug, PartialEq, Eq)]
pub struct SlotMap {
    /// Per slot, its master's index in `masters`; [`UNSERVED`] for a slot no master serves.
    owners: Vec<u16>,
    /// The masters, each once.
    pub masters: Vec<Address>,
    /// The replicas, each once.
    pub replicas: Vec<Address>,
}

/// A slot no master serves (the cluster is missing a master, or is being set up).
const UNSERVED: u16 = u16::MAX;

impl SlotMap {
    /// A map of no master: what the connection holds before its first reading.
    pub fn empty() -> SlotMap {
        SlotMap {
            owners: vec![UNSERVED; usize::from(SLOTS)],
            masters: Vec::new(),
            replicas: Vec::new(),
        }
    }

    /// Reads a `CLUSTER SLOTS` reply given by the node at `asked` (a node lists itself with an
    /// empty host when it does not know under which address clients reach it).
    pub fn read(reply: &Value, asked: &str) -> RedisResult<SlotMap> {
        let Value::Array(ranges) = reply else {
            return Err(unreadable("not an array"));
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(unreadable("a range is not an array"));
            };
            let [start, end, master, replicas @ ..] = fields.as_slice() else {
                return Err(unreadable("a range without its master"));
            };
            let (start, end) = (slot(start)?, slot(end)?);
            if start > end {
                return Err(unreadable("a range ends before it starts"));
            }
            let master = address(master, asked)?;
            let index = match map.masters.iter().position(|known| *known == master) {
                Some(index) => index,
                None => {
                    map.masters.push(master);
                    map.masters.len() - 1
                }
            };
            // At most 16,384 masters, each serving a slot: the index fits, below UNSERVED.
            let index = u16::try_from(index).map_err(|_| unreadable("too many masters"))?;
            map.owners[usize::from(start)..=usize::from(end)].fill(index);
            for replica in replicas {
                let replica = address(replica, asked)?;
                if !map.replicas.contains(&replica) {
                    map.replicas.push(replica);
                }
            }
        }
        if map.masters.is_empty() {
            return Err(unreadable("no slot is served"));
        }
        Ok(map)
    }

    /// The index in [`SlotMap::masters`] of the master serving `slot`, if one does.
    pub fn master_of(&self, slot: u16) -> Option<usize> {
        match self.owners.get(usize::from(slot)) {
            Some(&UNSERVED) | None => None,
            Some(&index) => Some(usize::from(index)),
        }
    }
}

fn slot(value: &Value) -> RedisResult<u16> {
    match value {
        Value::Int(slot) if (0..i64::from(SLOTS)).contains(slot) => Ok(*slot as u16),
        _ => Err(unreadable("a slot is not a number below 16,384")),
    }
}

/// A node's `[host, port, id, …]`.
fn address(node: &Value, asked: &str) -> RedisResult<Address> {
    let Value::Array(fields) = node else {
        return Err(unreadable("a node is not an array"));
    };
    let (Some(host), Some(Value::Int(port))) = (fields.first(), fields.get(1)) else {
        return Err(unreadable("a node without host and port"));
    };
    let host = match host {
        Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
        Value::SimpleString(host) => host.clone(),
        _ => return Err(unreadable("a node's host is not a string")),
    };
    let port = u16::try_from(*port).map_err(|_| unreadable("a node's port is out of range"))?;
    let host = if host.is_empty() {
        asked.to_owned()
    } else {
        host
    };
    Ok((host, port))
}

fn unreadable(why: &'static str) -> RedisError {
    RedisError::from((
        ErrorKind::Parse,
        "unreadable CLUSTER SLOTS reply",
        why.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"0123abcd".to_vec()),
        ])
    }

    fn range(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut fields = vec![Value::Int(start), Value::Int(end)];
        fields.extend(nodes);
        Value::Array(fields)
    }

    #[test]
    fn each_slot_maps_to_its_master_and_replicas_are_listed_once() {
        let reply = Value::Array(vec![
            range(
                0,
                5460,
                vec![node("10.0.0.1", 7000), node("10.0.0.4", 7003)],
            ),
            range(5461, 10922, vec![node("", 7001)]),
            range(
                10923,
                16000,
                vec![node("10.0.0.3", 7002), node("10.0.0.4", 7003)],
            ),
            range(16001, 16383, vec![node("10.0.0.1", 7000)]),
        ]);
        let map = SlotMap::read(&reply, "10.0.0.2").unwrap();
        let master = |slot| map.master_of(slot).map(|index| map.masters[index].clone());
        assert_eq!(master(0), Some(("10.0.0.1".into(), 7000)));
        assert_eq!(
            master(5461),
            Some(("10.0.0.2".into(), 7001)),
            "empty host: the asked"
        );
        assert_eq!(master(16000), Some(("10.0.0.3".into(), 7002)));
        assert_eq!(master(16383), Some(("10.0.0.1".into(), 7000)));
        assert_eq!(map.masters.len(), 3);
        assert_eq!(map.replicas, [("10.0.0.4".to_owned(), 7003)]);
    }

    #[test]
    fn a_slot_no_master_serves_has_none() {
        let reply = Value::Array(vec![range(0, 99, vec![node("h", 1)])]);
        let map = SlotMap::read(&reply, "h").unwrap();
        assert_eq!(map.master_of(99), Some(0));
        assert_eq!(map.master_of(100), None);
        assert_eq!(map.master_of(SLOTS), None);
    }

    #[test]
    fn a_malformed_reply_is_an_error_not_a_map() {
        for reply in [
            Value::Nil,
            Value::Array(vec![]),
            Value::Array(vec![range(0, 16384, vec![node("h", 1)])]),
            Value::Array(vec![range(9, 8, vec![node("h", 1)])]),
            Value::Array(vec![range(0, 1, vec![])]),
            Value::Array(vec![range(0, 1, vec![node("h", 70_000)])]),
            Value::Array(vec![range(0, 1, vec![Value::Int(1)])]),
        ] {
            assert!(SlotMap::read(&reply, "h").is_err(), "{reply:?}");
        }
    }
}
