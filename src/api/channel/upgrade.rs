//! HTTP/1.1 requests that ask to become a WebSocket (`Upgrade: websocket`), served so that a
//! channel connection keeps only its socket (README, "Internal push channel").
//!
//! actix-http hands such a request, with the connection itself, to this service instead of
//! running it under its HTTP/1.1 dispatcher. The request still goes through the whole API
//! (the same [`App`](actix_web::App): middleware, authentication, problem answers), so
//! `/v1/channel` is one handler whatever the transport. Its answer is written here:
//! - `101` carrying an [`Accepted`] channel: the dispatcher's buffers are dropped and the
//!   session runs over the bare socket ([`crate::channel::session::run`]) on this connection's
//!   own task;
//! - anything else (a refusal, or a WebSocket request to another path): the answer, then the
//!   connection closes, as a refused upgrade leaves nothing else to say on it.

use crate::channel::Attached;
use crate::channel::session::{self, Timing};
use actix_codec::{Encoder, Framed};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::{ConnectionType, Request, Response, StatusCode, h1};
use actix_web::dev::{AppConfig, Service, ServiceFactory, ServiceResponse, fn_factory, fn_service};
use actix_web::{Error, HttpResponse};
use bytes::BytesMut;
use std::rc::Rc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// A channel the API accepted: the `101` answer carries it to [`serve`], which runs it.
pub struct Accepted {
    /// The device's place in the hub.
    pub attached: Attached,
    /// The connection's timing and frame limit.
    pub timing: Timing,
}

/// Puts `accepted` on the `101` answer `response`.
pub fn carry(mut response: HttpResponse, accepted: Accepted) -> HttpResponse {
    response.extensions_mut().insert(accepted);
    response
}

/// The upgrade service over connections of type `T`, answering through the API that
/// `app_factory` builds (one instance per worker, like the API's own).
pub fn factory<T, F, S, B>(
    app_factory: F,
) -> impl ServiceFactory<
    (Request, Framed<T, h1::Codec>),
    Config = (),
    Response = (),
    Error = Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn() -> S + Clone + 'static,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let app = app_factory();
        async move {
            let api = Rc::new(app.new_service(AppConfig::default()).await?);
            Ok(fn_service(move |(request, framed)| {
                serve(api.clone(), request, framed)
            }))
        }
    })
}

/// Answers one upgrade request through `api`, then runs the channel it accepted.
async fn serve<T, A, B>(
    api: Rc<A>,
    request: Request,
    framed: Framed<T, h1::Codec>,
) -> Result<(), Error>
where
    T: AsyncRead + AsyncWrite + Unpin,
    A: Service<Request, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    // An error the API did not turn into an answer itself is answered as actix-web would.
    let mut response: Response<BoxBody> = match api.call(request).await {
        Ok(response) => response.map_into_boxed_body().into(),
        Err(error) => error.error_response().into(),
    };
    let accepted = response.extensions_mut().remove::<Accepted>();
    let parts = framed.into_parts();
    let (mut io, mut codec, already_read) = (parts.io, parts.codec, parts.read_buf);
    let mut out = BytesMut::new();
    match accepted {
        Some(accepted) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            let (head, _) = response.into_parts();
            codec.encode(h1::Message::Item((head, BodySize::None)), &mut out)?;
            io.write_all(&out).await?;
            io.flush().await?;
            drop((out, codec));
            session::run(io, already_read, accepted.attached, accepted.timing).await;
        }
        _ => {
            response
                .head_mut()
                .set_connection_type(ConnectionType::Close);
            let (head, body) = response.into_parts();
            let body = actix_http::body::to_bytes(body)
                .await
                .map_err(|_| std::io::Error::other("the answer's body failed"))?;
            codec.encode(
                h1::Message::Item((head, BodySize::Sized(body.len() as u64))),
                &mut out,
            )?;
            codec.encode(h1::Message::Chunk(Some(body)), &mut out)?;
            codec.encode(h1::Message::Chunk(None), &mut out)?;
            io.write_all(&out).await?;
            io.shutdown().await?;
        }
    }
    Ok(())
}
