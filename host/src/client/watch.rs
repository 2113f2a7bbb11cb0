//! [`Client::watch`]: the changes to secrets under a prefix, as they
//! happen, from the server's change events (`sys/events/subscribe`).

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::{Stream, StreamExt as _};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::transport::{api_error, encode_path, invalid_json, Connection};
use super::{Client, ClientError};

/// One change to a secret, as the server reports it. It never holds the
/// value: read the secret again to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeEvent {
    /// The event's id, unique on its server.
    pub id: String,
    /// What happened, in Vault's names: `kv-v2/data-write` (a new
    /// version), `kv-v2/data-delete` (versions soft-deleted),
    /// `kv-v2/undelete`, `kv-v2/destroy`, `kv-v2/delete` (the secret and
    /// all its versions), `kv-v2/metadata-write` (its settings).
    pub event_type: String,
    /// The secret, `<mount>/<path>` (`secret/apps/db`).
    pub path: String,
    /// The secret's current version after the change, when it has one.
    pub version: Option<u64>,
    /// The versions the change touched (deleted, destroyed, undeleted).
    pub versions: Vec<u64>,
    /// When it happened (RFC 3339).
    pub time: String,
    /// The request that made the change (as in the audit log).
    pub request_id: String,
    /// Who made it.
    pub principal: String,
}

/// The stream [`Client::watch`] returns: one [`ChangeEvent`] per change,
/// until the connection ends (`None`). An error (the connection broke, or
/// the watcher fell so far behind that the server dropped it) is followed
/// by the end: read what you need again, then watch anew.
pub struct Watch {
    ws: WebSocketStream<Connection>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Client {
    /// Watch the secrets under `prefix` (`secret/apps/`; `""` for every
    /// secret the token may read): each write, delete, destroy, undelete and
    /// metadata change arrives as a [`ChangeEvent`] within milliseconds.
    /// Only changes to secrets the token may `read` are sent.
    ///
    /// ```no_run
    /// # async fn demo(client: tresor::client::Client) -> Result<(), tresor::client::ClientError> {
    /// let mut changes = client.watch("secret/apps/billing/").await?;
    /// while let Some(change) = changes.next().await {
    ///     let change = change?;
    ///     let fresh = client.get(&change.path).await?; // the new value
    /// #   let _ = fresh;
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Every change after this call returns is delivered. A server without
    /// change events (an older Tresor, or Vault without them) answers with
    /// a [`ClientError::Api`] of status 404 or 400: poll instead.
    pub async fn watch(&self, prefix: &str) -> Result<Watch, ClientError> {
        let path = format!(
            "/v1/sys/events/subscribe/kv-v2/*?json=true&prefix={}",
            encode_path(prefix.trim_start_matches('/'))
        );
        let mut request = self
            .ws_url(&path)
            .into_client_request()
            .map_err(|e| ClientError::InvalidPath(format!("`{prefix}` cannot be watched: {e}")))?;
        if let Some(token) = self.token() {
            let value = token
                .parse()
                .map_err(|_| ClientError::Config("TRESOR_TOKEN is not a valid header value".into()))?;
            request.headers_mut().insert("X-Vault-Token", value);
        }
        let connection = self.connect().await?;
        match tokio_tungstenite::client_async(request, connection).await {
            Ok((ws, _)) => Ok(Watch { ws }),
            Err(tungstenite::Error::Http(answer)) => {
                Err(api_error(answer.status(), answer.body().as_deref().unwrap_or_default()))
            }
            Err(e) => Err(ClientError::Transport(format!("the websocket handshake failed: {e}"))),
        }
    }
}

impl Watch {
    /// The next change; `None` when the connection ended.
    pub async fn next(&mut self) -> Option<Result<ChangeEvent, ClientError>> {
        futures_util::StreamExt::next(self).await
    }
}

impl Stream for Watch {
    type Item = Result<ChangeEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(self.ws.poll_next_unpin(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(None),
                Some(Err(e)) => {
                    return Poll::Ready(Some(Err(ClientError::Transport(format!(
                        "the watch connection broke: {e}; read the secrets again, then watch anew"
                    )))))
                }
                Some(Ok(Message::Text(text))) => return Poll::Ready(Some(parse(text.as_str()))),
                Some(Ok(_)) => continue,
            }
        }
    }
}

/// One message of the subscription: a CloudEvents envelope, or the
/// server's word that it dropped a watcher that fell behind.
fn parse(text: &str) -> Result<ChangeEvent, ClientError> {
    let message: Value = serde_json::from_str(text).map_err(invalid_json)?;
    if let Some(why) = message["error"].as_str() {
        return Err(ClientError::Transport(format!(
            "the server ended the watch: {why}; read the secrets again, then watch anew"
        )));
    }
    let meta = &message["data"]["event"]["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let number = |v: &Value| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64());
    let path = meta["path"]
        .as_str()
        .ok_or_else(|| ClientError::InvalidAnswer("a change event without a path".into()))?;
    Ok(ChangeEvent {
        id: text(&message["id"]),
        event_type: text(&message["type"]),
        path: path.to_string(),
        version: number(&meta["current_version"]),
        versions: meta["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(number)
            .collect(),
        time: text(&message["time"]),
        request_id: text(&meta["request_id"]),
        principal: text(&meta["principal"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_becomes_a_change_event_and_a_drop_notice_an_error() {
        let envelope = r#"{"id":"e1","type":"kv-v2/data-delete","time":"2026-12-03T10:00:00.000Z",
            "data":{"event":{"metadata":{"path":"secret/apps/db","current_version":"3",
            "versions":["1","2"],"request_id":"r-1","principal":"ci"}}}}"#;
        let event = parse(envelope).unwrap();
        assert_eq!(event.path, "secret/apps/db");
        assert_eq!(event.event_type, "kv-v2/data-delete");
        assert_eq!((event.version, event.versions.clone()), (Some(3), vec![1, 2]));
        assert_eq!((event.request_id.as_str(), event.principal.as_str()), ("r-1", "ci"));
        let dropped = parse(r#"{"error":"this subscriber missed 12 events"}"#).unwrap_err();
        assert!(dropped.to_string().contains("missed 12 events"), "{dropped}");
        assert!(dropped.is_retryable());
        assert!(matches!(parse("{}"), Err(ClientError::InvalidAnswer(_))));
    }
}
