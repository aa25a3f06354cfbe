//! Bytes through the store's RESP decoder (what a Redis server's replies would be read with):
//! any bytes, never a panic; a reply it reads is the value the redis crate's own parser reads
//! from the same bytes, and bytes it finds cut short the crate cannot read either. It may
//! refuse what the crate reads (it is stricter: no spaces around integers, no negative
//! lengths but -1, no RESP3), never the other way round.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::registry::redis::resp;

fuzz_target!(|bytes: &[u8]| {
    match resp::decode(bytes) {
        Ok(Some((value, used))) => {
            assert!(used <= bytes.len());
            assert_eq!(redis::parse_redis_value(&bytes[..used]).ok(), Some(value));
        }
        Ok(None) => assert!(redis::parse_redis_value(bytes).is_err()),
        Err(_) => {}
    }
});
