//! HPACK's indexing tables (RFC 7541 §2.3): the static table, and the dynamic table of one
//! direction of one connection, which the decoder keeps in step with the peer's encoder.

use std::collections::VecDeque;

/// RFC 7541 Appendix A: index 1 is the first row.
#[rustfmt::skip]
pub const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// What an entry costs in a table's size: its bytes and 32 (RFC 7541 §4.1).
pub fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + 32
}

/// One connection direction's dynamic table: newest entry first, so entry `i` (1-based) is
/// index `STATIC_TABLE.len() + i`.
#[derive(Debug)]
pub struct DynamicTable {
    /// The entries, newest at the front.
    entries: VecDeque<Entry>,
    /// The sum of [`entry_size`] over the entries.
    size: usize,
    /// The size the encoder last chose (a size update), at most the protocol's limit.
    max_size: usize,
}

/// A field the peer's encoder inserted.
#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
}

impl DynamicTable {
    /// An empty table of `max_size` bytes (HTTP/2's default is 4,096).
    pub fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The name and value at `index` of the combined index space (static, then dynamic).
    pub fn get(&self, index: usize) -> Option<(&[u8], &[u8])> {
        match index {
            0 => None,
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Some((name.as_bytes(), value.as_bytes()))
            }
            _ => self
                .entries
                .get(index - STATIC_TABLE.len() - 1)
                .map(|entry| (&entry.name[..], &entry.value[..])),
        }
    }

    /// Adds an entry, evicting the oldest until it fits; one larger than the table empties
    /// it and is not added (RFC 7541 §4.4: not an error).
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = entry_size(name, value);
        self.evict_to(self.max_size.saturating_sub(size));
        if size <= self.max_size {
            self.entries.push_front(Entry {
                name: name.into(),
                value: value.into(),
            });
            self.size += size;
        }
    }

    /// A new maximum size (a dynamic table size update), evicting what no longer fits.
    pub fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// The table's current size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The entries, newest first (tests compare them with the RFC's examples).
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|entry| (&entry.name[..], &entry.value[..]))
    }

    fn evict_to(&mut self, size: usize) {
        while self.size > size {
            let Some(entry) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry_size(&entry.name, &entry.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_run_through_the_static_table_then_newest_first() {
        let mut table = DynamicTable::new(4096);
        assert_eq!(table.get(0), None);
        assert_eq!(table.get(2), Some((&b":method"[..], &b"GET"[..])));
        assert_eq!(table.get(61), Some((&b"www-authenticate"[..], &b""[..])));
        assert_eq!(table.get(62), None);
        table.insert(b"a", b"1");
        table.insert(b"b", b"2");
        assert_eq!(table.get(62), Some((&b"b"[..], &b"2"[..])));
        assert_eq!(table.get(63), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(table.get(64), None);
        assert_eq!(table.size(), 2 * 34);
    }

    #[test]
    fn the_oldest_entries_make_room_and_an_oversized_one_empties_the_table() {
        let mut table = DynamicTable::new(100);
        table.insert(b"a", b"1"); // 34
        table.insert(b"b", b"2"); // 68
        table.insert(b"c", b"3"); // 102 > 100: "a" goes
        assert_eq!(table.entries().count(), 2);
        assert_eq!(table.get(63), Some((&b"b"[..], &b"2"[..])));
        table.resize(34);
        assert_eq!(
            table.entries().collect::<Vec<_>>(),
            [(&b"c"[..], &b"3"[..])]
        );
        table.insert(&[b'x'; 10], &[b'y'; 10]);
        assert_eq!((table.entries().count(), table.size()), (0, 0));
    }
}
