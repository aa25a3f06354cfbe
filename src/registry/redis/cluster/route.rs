//! Where a command goes in a Redis Cluster: the master of its key's slot (CRC16 of the key's
//! hash tag, or of the whole key, mod 16,384), found where Redis's command table puts the
//! key of each kind of command the node sends.
//!
//! Every command of the node touches one key (scripts too: `EVALSHA <sha> 1 <key> …`), so one
//! slot per command is all the routing there is; commands without a key (`PING`,
//! `CONFIG GET`) may go to any master, and `SCRIPT LOAD` goes to every master, since a script
//! must be known where it runs.

use redis::{Arg, Cmd};

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// Where a command is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To the master of this slot.
    Slot(u16),
    /// To any master: the command reads or writes no key.
    AnyMaster,
    /// To every master (`SCRIPT LOAD`): the first error, or else the first reply, answers.
    EveryMaster,
}

/// Where `command` goes.
pub fn of(command: &Cmd) -> Route {
    let mut args = command.args_iter().map(|arg| match arg {
        Arg::Simple(bytes) => bytes,
        _ => &[],
    });
    let Some(name) = args.next() else {
        return Route::AnyMaster;
    };
    let is = |names: &[&[u8]]| names.iter().any(|known| name.eq_ignore_ascii_case(known));
    let key = if is(&[
        b"EVALSHA",
        b"EVAL",
        b"EVALSHA_RO",
        b"EVAL_RO",
        b"FCALL",
        b"FCALL_RO",
    ]) {
        // `EVALSHA <sha> <numkeys> <key> …`: no key when numkeys is 0.
        let _script = args.next();
        match args.next() {
            Some(b"0") | None => None,
            Some(_) => args.next(),
        }
    } else if is(&[b"XREADGROUP", b"XREAD"]) {
        // `XREADGROUP GROUP g c … STREAMS <key> … <id> …`: the first stream's key.
        let mut args = args.skip_while(|arg| !arg.eq_ignore_ascii_case(b"STREAMS"));
        let _streams = args.next();
        args.next()
    } else if is(&[b"XGROUP", b"XINFO", b"OBJECT", b"MEMORY"]) {
        // `XGROUP CREATE <key> …`, `OBJECT ENCODING <key>`: a subcommand, then the key.
        args.nth(1)
    } else if is(&[b"SCRIPT"]) {
        return match args.next() {
            Some(sub) if sub.eq_ignore_ascii_case(b"LOAD") => Route::EveryMaster,
            _ => Route::AnyMaster,
        };
    } else if is(&[
        b"PING", b"ECHO", b"INFO", b"CONFIG", b"CLUSTER", b"COMMAND", b"CLIENT", b"TIME",
        b"DBSIZE", b"LATENCY", b"SLOWLOG", b"ACL",
    ]) {
        None
    } else {
        // Every other command names its key first (`PUBLISH` its channel, which reaches
        // every node's subscribers from any node).
        args.next()
    };
    key.map_or(Route::AnyMaster, |key| Route::Slot(key_slot(key)))
}

/// The slot of `key`: of its hash tag (what lies between its first `{` and the first `}`
/// after it, when that is not empty), else of the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&byte| byte == b'{')?;
    let after = &key[open + 1..];
    let close = after.iter().position(|&byte| byte == b'}')?;
    (close > 0).then(|| &after[..close])
}

/// CRC16-XMODEM (polynomial 0x1021, initial 0), as Redis Cluster computes it.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// One step of CRC16-XMODEM per possible top byte: a lookup per byte instead of eight shifts.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = (index as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // Redis's documentation: CLUSTER KEYSLOT foo = 12182, somekey = 11058.
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"somekey"), 11_058);
        for key in [
            "{acme:alice}",
            "{acme:alice}:revoked",
            "o:acme:1f2e",
            "{}",
            "{}x{y}",
            "a{b",
            "a}b{",
            "x{y}z",
            "",
        ] {
            assert_eq!(
                Slot::new(key_slot(key.as_bytes())),
                Some(Slot::for_key(key)),
                "{key}"
            );
        }
    }

    #[test]
    fn each_kind_of_command_routes_by_its_key() {
        let slot = |key: &str| Route::Slot(key_slot(key.as_bytes()));
        let cmd = |args: &[&str]| {
            let mut cmd = redis::Cmd::new();
            for arg in args {
                cmd.arg(*arg);
            }
            of(&cmd)
        };
        assert_eq!(cmd(&["HGETALL", "{a:b}"]), slot("{a:b}"));
        assert_eq!(cmd(&["evalsha", "0123", "1", "{a:b}", "x"]), slot("{a:b}"));
        assert_eq!(cmd(&["EVAL", "return 1", "0"]), Route::AnyMaster);
        assert_eq!(
            cmd(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "9",
                "STREAMS",
                "{s}",
                ">"
            ]),
            slot("{s}")
        );
        assert_eq!(cmd(&["XGROUP", "CREATE", "{s}", "g", "$"]), slot("{s}"));
        assert_eq!(cmd(&["PUBLISH", "ends", "x"]), slot("ends"));
        assert_eq!(cmd(&["SCRIPT", "load", "return 1"]), Route::EveryMaster);
        assert_eq!(cmd(&["CONFIG", "GET", "hz"]), Route::AnyMaster);
        assert_eq!(cmd(&["PING"]), Route::AnyMaster);
        assert_eq!(cmd(&[]), Route::AnyMaster);
        assert_eq!(
            cmd(&["AVERYLONGCOMMANDNAMEINDEED", "k"]),
            slot("k"),
            "an unknown command names its key first"
        );
    }
}
