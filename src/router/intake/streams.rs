//! Which streams carry intake and which one carries an event: pure functions, tested offline.
//!
//! A Redis Cluster puts a key on the slot its hash tag names (CRC16 of the tag, mod 16,384).
//! Stream `i` of `n` gets a tag whose slot falls in the `i`-th of `n` equal slot ranges, so
//! the streams spread over the masters as the slots do: a cluster whose masters own equal
//! shares of the slots carries an equal share of the streams on each. On one server the same
//! keys are used; their slots do not matter there.

/// Slots of a Redis Cluster.
pub const SLOTS: u32 = 16_384;

/// The keys of `count` intake streams named `name`: `{<name>:intake:<i>}`, or
/// `{<name>:intake:<i>.<k>}` with the smallest `k` that lands in the stream's slot range.
pub fn stream_keys(name: &str, count: u32) -> Vec<String> {
    let count = count.max(1);
    (0..count)
        .map(|index| {
            let range = slot_range(index, count);
            (0u32..)
                .map(|attempt| match attempt {
                    0 => format!("{name}:intake:{index}"),
                    k => format!("{name}:intake:{index}.{k}"),
                })
                .find(|tag| range.contains(&u32::from(slot(tag.as_bytes()))))
                // A tag is a CRC16 away from any slot: one in every `count` tries lands.
                .map_or_else(String::new, |tag| format!("{{{tag}}}"))
        })
        .collect()
}

/// The slots stream `index` of `count` should live in.
fn slot_range(index: u32, count: u32) -> std::ops::Range<u32> {
    (index * SLOTS / count)..((index + 1) * SLOTS / count)
}

/// Which of `count` streams carries `event_id` of `tenant`: a stable hash (FNV-1a), so every
/// node picks the same one.
pub fn stream_of(tenant: &str, event_id: &str, count: usize) -> usize {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = tenant
        .bytes()
        .chain(std::iter::once(0))
        .chain(event_id.bytes());
    let hash = bytes.fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    (hash % count.max(1) as u64) as usize
}

/// The cluster slot of a hash tag's content: CRC16-XMODEM mod 16,384, as Redis computes it.
pub fn slot(tag: &[u8]) -> u16 {
    crate::registry::redis::cluster::crc16(tag) % SLOTS as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn slots_are_redis_slots() {
        // The slot of a stream's key is its tag's (the CRC itself is tested where it lives).
        for key in ["{ringcast:intake:0}", "{ringcast:intake:7.12}", "x"] {
            let tag = key.trim_start_matches('{').trim_end_matches('}');
            assert_eq!(Slot::for_key(key), Slot::new(slot(tag.as_bytes())).unwrap());
        }
    }

    #[test]
    fn each_stream_lands_in_its_own_slot_range() {
        for count in [1, 3, 16, 64] {
            let keys = stream_keys("ringcast", count);
            assert_eq!(keys.len(), count as usize);
            for (index, key) in keys.iter().enumerate() {
                let tag = &key[1..key.len() - 1];
                assert!(key.starts_with('{') && key.ends_with('}'), "{key}");
                assert!(
                    slot_range(index as u32, count).contains(&u32::from(slot(tag.as_bytes()))),
                    "{key} of {count}"
                );
            }
        }
        assert_eq!(stream_keys("ringcast", 1), ["{ringcast:intake:0}"]);
        assert_eq!(stream_keys("eu", 1), ["{eu:intake:0}"]);
    }

    #[test]
    fn an_event_always_picks_the_same_stream_and_events_spread() {
        assert_eq!(stream_of("a", "call-1", 16), stream_of("a", "call-1", 16));
        assert_eq!(stream_of("a", "call-1", 1), 0);
        let mut used = [0usize; 16];
        for n in 0..1_600 {
            used[stream_of("acme", &format!("call-{n}"), 16)] += 1;
        }
        assert!(used.iter().all(|&count| count > 50), "{used:?}");
    }
}
