//! Running a command or a Lua script on any of the store's connections (one server, Sentinel's
//! master, a cluster), and reading its reply: the one way every Redis user in the node does it.
//!
//! Why not the redis crate's `Cmd::query_async` and `ScriptInvocation`: the first walks every
//! reply for error values nested in arrays, rebuilding each array it walks, and the second
//! copies its keys and arguments twice (into its own vectors, then into the `EVALSHA` it
//! packs). Neither buys anything here: an error reply to a command or a script is the reply
//! itself, never an element of it (no pipelines or transactions go through this module), and
//! a script's command is packed once. On the call path (a lease, a lookup, a finish, an intake
//! entry per call) that was ~2 % of the node's instructions per push.

use redis::aio::ConnectionLike;
use redis::{
    Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value,
};

/// Runs `command` and reads its reply as `T`; an error reply is an `Err`.
pub async fn query<T: FromRedisValue>(
    connection: &mut impl ConnectionLike,
    command: &Cmd,
) -> RedisResult<T> {
    let value = connection.req_packed_command(command).await;
    value.and_then(answered).and_then(read)
}

/// Arguments and bytes a script call is made with room for.
const CALL_ARGS: usize = 12;
const CALL_BYTES: usize = 256;

/// One call of a Lua script on one key, packed once as `EVALSHA <sha1> 1 <key> <args…>`.
/// Every script of the node touches exactly one key, so that it runs on that key's cluster
/// slot.
pub struct ScriptCall<'a> {
    /// The script, loaded with `SCRIPT LOAD` when a server answers `NOSCRIPT`.
    script: &'a Script,
    /// The `EVALSHA` command, arguments appended by [`ScriptCall::arg`].
    command: Cmd,
}

impl<'a> ScriptCall<'a> {
    /// A call of `script` on `key`, its arguments to follow.
    pub fn new(script: &'a Script, key: impl ToRedisArgs) -> ScriptCall<'a> {
        // Room for the largest call the node makes (a lease renewal: ~10 arguments, most of
        // them short), so that appending them does not grow the buffers step by step.
        let mut command = Cmd::with_capacity(CALL_ARGS, CALL_BYTES);
        command
            .arg("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(key);
        ScriptCall { script, command }
    }

    /// Appends `arg` to the script's `ARGV`.
    pub fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.command.arg(arg);
        self
    }

    /// Runs the script and reads its reply as `T`. A server that does not know the script
    /// (a new or restarted one, or a failed-over master) answers `NOSCRIPT`: the script is
    /// loaded there and the call sent once more, as the crate's `ScriptInvocation` does.
    pub async fn run<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        let value = connection.req_packed_command(&self.command).await;
        match value.and_then(answered) {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(connection).await?;
                query(connection, &self.command).await
            }
            answer => answer.and_then(read),
        }
    }
}

/// The reply, or its error when the server answered with one.
fn answered(value: Value) -> RedisResult<Value> {
    match value {
        Value::ServerError(error) => Err(error.into()),
        value => Ok(value),
    }
}

/// The reply as `T`.
fn read<T: FromRedisValue>(value: Value) -> RedisResult<T> {
    Ok(redis::from_redis_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::{Pipeline, RedisFuture};
    use std::collections::VecDeque;

    /// A connection that answers from a script of replies and records what it was sent.
    #[derive(Default)]
    struct Scripted {
        replies: VecDeque<RedisResult<Value>>,
        sent: Vec<Vec<u8>>,
    }

    impl ConnectionLike for Scripted {
        fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
            self.sent.push(cmd.get_packed_command());
            let reply = self.replies.pop_front().expect("a reply was scripted");
            Box::pin(async move { reply })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a Pipeline,
            _: usize,
            _: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            unreachable!("no pipelines here")
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    fn server_error(line: &str) -> Value {
        redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap()
    }

    fn text(sent: &[u8]) -> String {
        String::from_utf8_lossy(sent).replace("\r\n", " ")
    }

    #[tokio::test]
    async fn a_script_is_packed_once_as_evalsha_on_its_key() {
        let script = Script::new("return ARGV[1]");
        let mut connection = Scripted::default();
        connection.replies.push_back(Ok(Value::Int(7)));
        let mut call = ScriptCall::new(&script, "{acme:alice}");
        call.arg("phone").arg(42u64);
        let answer: i64 = call.run(&mut connection).await.unwrap();
        assert_eq!(answer, 7);
        assert_eq!(
            text(&connection.sent[0]),
            format!(
                "*6 $7 EVALSHA $40 {} $1 1 $12 {{acme:alice}} $5 phone $2 42 ",
                script.get_hash()
            )
        );
    }

    #[tokio::test]
    async fn noscript_loads_the_script_and_sends_the_call_again() {
        let script = Script::new("return 1");
        let mut connection = Scripted::default();
        connection.replies.extend([
            Ok(server_error("NOSCRIPT No matching script.")),
            Ok(Value::BulkString(script.get_hash().as_bytes().to_vec())),
            Ok(Value::Int(1)),
        ]);
        let answer: i64 = ScriptCall::new(&script, "k")
            .run(&mut connection)
            .await
            .unwrap();
        assert_eq!(answer, 1);
        assert_eq!(connection.sent.len(), 3);
        assert!(text(&connection.sent[1]).contains("SCRIPT $4 LOAD"));
        assert_eq!(connection.sent[2], connection.sent[0]);
    }

    #[tokio::test]
    async fn an_error_reply_is_an_error_and_is_not_retried() {
        let script = Script::new("return 1");
        let mut connection = Scripted::default();
        connection.replies.push_back(Ok(server_error(
            "READONLY You can't write against a read only replica.",
        )));
        let error = ScriptCall::new(&script, "k")
            .run::<i64>(&mut connection)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly));
        assert_eq!(connection.sent.len(), 1);

        connection
            .replies
            .push_back(Ok(server_error("ERR wrong number of arguments")));
        let error = query::<i64>(&mut connection, &redis::cmd("GET"))
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ResponseError)
        );
    }

    #[tokio::test]
    async fn replies_are_read_as_the_callers_type() {
        let mut connection = Scripted::default();
        connection.replies.push_back(Ok(Value::Array(vec![
            Value::BulkString(b"phone".to_vec()),
            Value::BulkString(vec![1, 2]),
        ])));
        let fields: Vec<(String, Vec<u8>)> = query(&mut connection, redis::cmd("HGETALL").arg("k"))
            .await
            .unwrap();
        assert_eq!(fields, vec![("phone".to_owned(), vec![1, 2])]);

        connection.replies.push_back(Ok(Value::Nil));
        let missing: Option<String> = query(&mut connection, &redis::cmd("GET")).await.unwrap();
        assert_eq!(missing, None);

        connection.replies.push_back(Ok(Value::Int(3)));
        let wrong = query::<Vec<String>>(&mut connection, &redis::cmd("GET")).await;
        assert!(wrong.is_err(), "an integer is no list");
    }
}
