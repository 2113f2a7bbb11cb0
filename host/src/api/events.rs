//! `GET /v1/sys/events/subscribe/<event type>`: change events over a
//! websocket, in Vault's shape (a CloudEvents envelope per message, JSON).
//!
//! The type is exact (`kv-v2/data-write`), a prefix ending in `*`
//! (`kv-v2/*`) or `*` for all. `?prefix=secret/apps/` keeps only the events
//! of secrets under that path. Every event reaches the subscriber only when
//! Cedar lets its token `read` the event's secret (see [`crate::events`]).
//! The subscription starts with the handshake: no event after the `101`
//! answer is missed (one that falls too far behind gets a message saying how
//! many it missed, then the connection closes).

use futures_util::{SinkExt, StreamExt};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::error::ApiError;
use super::wire::Body;
use super::Ctx;
use crate::events::{Event, EventsError};

/// The query parameters of a subscription.
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// Whether `event` is of the subscribed `pattern`.
fn matches(pattern: &str, event: &Event) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event.event_type.as_str().starts_with(prefix),
        None => event.event_type.as_str() == pattern,
    }
}

pub(super) fn subscribe(cx: &Ctx<'_>, pattern: &str, parts: &mut Parts) -> Result<Response<Body>, ApiError> {
    let is_websocket = parts
        .headers
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = parts.headers.get("sec-websocket-key").map(|k| k.as_bytes().to_vec());
    let (true, Some(key)) = (is_websocket, key) else {
        return Err(ApiError::bad_request(
            "sys/events/subscribe is a websocket: connect with a websocket client (Upgrade: websocket)",
        ));
    };
    if pattern.is_empty() || pattern[..pattern.len() - usize::from(pattern.ends_with('*'))].contains('*') {
        return Err(ApiError::bad_request(
            "name an event type (`kv-v2/data-write`), a prefix ending in `*` (`kv-v2/*`), or `*`",
        ));
    }
    let upgrade = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("this connection cannot be upgraded to a websocket"))?;
    let prefix = query_param(parts.uri.query(), "prefix").unwrap_or("").to_string();
    // Subscribe now, so that nothing after the handshake is missed.
    let mut subscription = cx.host().subscribe(cx.caller(), &prefix);
    let pattern = pattern.to_string();
    let principal = cx.caller().principal.name.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "events: the websocket upgrade failed");
                return;
            }
        };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tracing::debug!(%principal, %pattern, %prefix, "events: subscriber connected");
        loop {
            tokio::select! {
                next = subscription.next() => match next {
                    Ok(event) if matches(&pattern, &event) => {
                        if ws.send(Message::text(event.envelope().to_string())).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e @ EventsError::Lagged(_)) => {
                        let _ = ws.send(Message::text(json!({ "error": e.to_string() }).to_string())).await;
                        break;
                    }
                    Err(EventsError::Closed) => break,
                },
                incoming = ws.next() => match incoming {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
        let _ = ws.close(None).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(hyper::header::UPGRADE, "websocket")
        .header(hyper::header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(&key))
        .body(Body::default())
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}
