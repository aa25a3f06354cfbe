//! The stats endpoint: `GET /stats` on the simulator's own TLS port, answering the counters
//! as JSON. Same port rather than a second plain one because the server speaks only HTTP/2
//! (hyper is built without HTTP/1) and one port is one thing to pass around; read it with
//! `curl --cacert <cert.pem> https://127.0.0.1:<port>/stats`. `/stats` is not an APNs path,
//! so it cannot shadow a push.

use super::recorder::Stats;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

/// Where the counters are served.
pub const PATH: &str = "/stats";

/// The counters as a JSON response.
pub fn response(stats: &Stats) -> Response<Full<Bytes>> {
    // Serializing plain integers and strings into a Vec cannot fail; fall back to an empty
    // object rather than panic anyway.
    let body = serde_json::to_vec(stats).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn serves_counters_as_json() {
        let stats = Stats {
            accepted: 3,
            ..Stats::default()
        };
        let body = response(&stats)
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let parsed: Stats = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed, stats);
    }
}
