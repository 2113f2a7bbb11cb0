//! Talking to Secret Manager: resource URLs, the bearer token (renewed once
//! when the API refuses it) and Google's error answers.

use std::time::Duration;

use serde_json::Value;
use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::Error;

use crate::auth::Auth;

/// One project of a Secret Manager endpoint.
pub struct Client {
    /// `https://secretmanager.googleapis.com`, no trailing slash.
    pub endpoint: String,
    /// The project id (or number) holding the secrets.
    pub project: String,
    /// Where bearer tokens come from.
    pub auth: Auth,
    /// Connect / first-byte timeout of each request.
    pub timeout: Duration,
}

/// An answer of the API: its status and JSON body (`null` when empty).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl Answer {
    /// Google's canonical error code (`NOT_FOUND`, `FAILED_PRECONDITION`,
    /// ...), or `""`.
    pub fn code(&self) -> &str {
        self.body.pointer("/error/status").and_then(Value::as_str).unwrap_or("")
    }

    /// Google's error message, or `""`. (It names resources, never values.)
    pub fn message(&self) -> &str {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The contract error for a failed answer: the SDK's status mapping,
    /// with Google's code and message appended.
    pub fn error(&self, what: &str) -> Error {
        let detail = match (self.code(), self.message()) {
            ("", "") => String::new(),
            (code, message) => format!(" ({code}: {})", clip(message, 300)),
        };
        http::status_error(self.status, &format!("{what}{detail}"))
            .unwrap_or_else(|| Error::unavailable(format!("{what}: unexpected HTTP {}{detail}", self.status)))
    }
}

impl Client {
    /// `.../v1/projects/<project>/secrets`.
    pub fn secrets_url(&self) -> String {
        format!("{}/v1/projects/{}/secrets", self.endpoint, self.project)
    }

    /// `.../secrets/<id>`.
    pub fn secret_url(&self, id: &str) -> String {
        format!("{}/{id}", self.secrets_url())
    }

    /// Sends `method url` with an optional JSON body and returns the answer,
    /// whatever its status. `idempotent` requests are retried by the SDK
    /// when the API is unreachable or answers 5xx. When the API refuses a
    /// service account's token (401), a fresh one is fetched and the
    /// request sent once more.
    pub fn call(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        idempotent: bool,
        what: &str,
    ) -> Result<Answer, Error> {
        let mut request = Request::new(method, url)
            .header("Accept", "application/json")
            .timeout(self.timeout)
            .idempotent(idempotent);
        if let Some(body) = body {
            request = request.json(body.to_string());
        }
        let response = http::send_with_bearer(&mut self.auth, &request)?;
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).map_err(|_| {
                Error::unavailable(format!(
                    "{what}: the answer (HTTP {}) is not JSON; is `endpoint` a Secret Manager API?",
                    response.status
                ))
            })?
        };
        Ok(Answer {
            status: response.status,
            body,
        })
    }

    /// Follows `nextPageToken` through every page of a list at `url`
    /// (which has no query yet), collecting the arrays under `field`.
    pub fn list_all(&mut self, url: &str, field: &str, what: &str) -> Result<Option<Vec<Value>>, Error> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut page_url = format!("{url}?pageSize={PAGE_SIZE}");
            if let Some(token) = &token {
                page_url.push_str(&format!("&pageToken={}", crate::auth::form_encode(token)));
            }
            let answer = self.call("GET", &page_url, None, true, what)?;
            match answer.status {
                200 => {}
                404 => return Ok(None),
                _ => return Err(answer.error(what)),
            }
            if let Some(Value::Array(page)) = answer.body.get(field) {
                items.extend(page.iter().cloned());
            }
            match answer.body.get("nextPageToken").and_then(Value::as_str) {
                Some(next) if !next.is_empty() && token.as_deref() != Some(next) => token = Some(next.to_owned()),
                _ => return Ok(Some(items)),
            }
        }
        Err(Error::unavailable(format!(
            "{what}: more than {MAX_PAGES} pages of {PAGE_SIZE}; list a narrower prefix"
        )))
    }
}

/// Items asked for per page of a list.
const PAGE_SIZE: u32 = 250;
/// Most pages followed by one list.
const MAX_PAGES: usize = 400;

/// `text`, cut to at most `max` characters.
pub fn clip(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The last segment of a resource name (`.../versions/3` → `3`).
pub fn last_segment(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`2024-05-01T12:00:00.123456789Z`, or with a `+hh:mm` offset); 0 when
/// it cannot be read.
pub fn rfc3339_ms(text: &str) -> u64 {
    parse_rfc3339(text).unwrap_or(0)
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, time) = text.split_once(['T', 't'])?;
    let mut ymd = date.split('-');
    let (year, month, day): (i64, i64, i64) = (
        ymd.next()?.parse().ok()?,
        ymd.next()?.parse().ok()?,
        ymd.next()?.parse().ok()?,
    );
    let (clock, offset_s) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => {
            let (clock, zone) = time.split_at(at);
            let offset = if zone.eq_ignore_ascii_case("z") {
                0
            } else {
                let (h, m) = zone[1..].split_once(':')?;
                let minutes = h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?;
                if zone.starts_with('-') {
                    -minutes * 60
                } else {
                    minutes * 60
                }
            };
            (clock, offset)
        }
        None => return None,
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut parts = hms.split(':');
    let (h, mi, s): (i64, i64, i64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let millis: i64 = fraction
        .get(..3)
        .map_or_else(|| format!("{fraction:0<3}").parse().ok(), |digits| digits.parse().ok())?;
    let seconds = days_since_epoch(year, month, day) * 86_400 + h * 3600 + mi * 60 + s - offset_s;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
fn days_since_epoch(year: i64, month: i64, day: i64) -> i64 {
    // Count from March, so the leap day ends the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// CRC32C (Castagnoli) of `bytes`, as Secret Manager checks payloads with.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
