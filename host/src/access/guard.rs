//! The guard every operation of the access path runs under: one audit
//! record and span per operation, Cedar's decision (or the host's own, for
//! work the host does by itself, such as revoking an expired lease), the
//! request entry written before anything happens and the response entry
//! after, both fail closed.
//!
//! ```text
//! let mut guard = Guard::open(policy, audit, caller, action, target);
//! guard.authorize(&resource, &ctx)?;        // deny: audited, typed error
//! let result = work.instrument(guard.span().clone()).await;
//! guard.finish(result)                      // response audited, result returned
//! ```

use std::time::Instant;

use crate::audit::{AccessSpan, AuditAction, AuditEvent, AuditLog, Phase, Verdict};
use crate::error::Error;
use crate::policy::{Action, Decision, PolicyEngine, RequestContext, Resource};

use super::Caller;

/// What an operation is about, as the audit record names it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    /// The mount (or the administrative area, e.g. `auth`, `sys`).
    pub mount: &'a str,
    /// The path inside it (a secret's path, `creds/<role>`, `token/create`, ...).
    pub path: &'a str,
    /// The plugin serving the mount, or `builtin`.
    pub plugin: &'a str,
}

/// One guarded operation; see the module docs.
pub(crate) struct Guard<'h> {
    policy: &'h PolicyEngine,
    audit: &'h AuditLog,
    caller: &'h Caller,
    action: Action,
    record: AuditEvent,
    span: AccessSpan,
    started: Instant,
}

impl<'h> Guard<'h> {
    /// Open the audit record and span of one operation.
    pub(crate) fn open(
        policy: &'h PolicyEngine,
        audit: &'h AuditLog,
        caller: &'h Caller,
        action: Action,
        target: Target<'_>,
    ) -> Guard<'h> {
        let record = AuditEvent {
            request_id: caller.request_id.clone().unwrap_or_else(super::request_id),
            phase: Phase::Request,
            principal: caller.principal.name.clone(),
            action: action.into(),
            mount: target.mount.to_string(),
            path: target.path.to_string(),
            plugin: target.plugin.to_string(),
            decision: Verdict::Deny,
            policies: Vec::new(),
            outcome: None,
            latency_us: None,
            source: caller.source.clone(),
            front_door: caller.front_door,
            lease_id: None,
        };
        let span = AccessSpan::start(&record);
        Guard {
            policy,
            audit,
            caller,
            action,
            record,
            span,
            started: Instant::now(),
        }
    }

    /// The id of this operation's request, as its audit entries name it.
    pub(crate) fn request_id(&self) -> &str {
        &self.record.request_id
    }

    /// The span of this operation, to instrument the work done under it.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.span.span()
    }

    /// Name the lease this operation issued or is about, in the span and in
    /// the audit entries written from now on.
    pub(crate) fn lease(&mut self, lease_id: &str) {
        self.span.lease(lease_id);
        self.record.lease_id = Some(lease_id.to_string());
    }

    fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn append(&self, phase: Phase, outcome: Option<&str>) -> Result<(), Error> {
        let mut e = self.record.clone();
        e.phase = phase;
        e.outcome = outcome.map(str::to_string);
        e.latency_us = outcome.map(|_| self.elapsed_us());
        self.audit
            .append(&e)
            .map_err(|err| Error::AuditUnavailable(err.to_string()))
    }

    /// Let Cedar decide `resource` in `ctx`. Denied: the denial is audited
    /// and a typed [`Error::Denied`] returned (nothing else happens).
    /// Allowed: the request entry is written before anything else (fail
    /// closed: an entry that cannot be written refuses the operation).
    pub(crate) fn authorize(&mut self, resource: &Resource, ctx: &RequestContext) -> Result<Decision, Error> {
        let decision = self
            .policy
            .authorize(&self.caller.principal, self.action, resource, ctx);
        self.decided(&decision)?;
        Ok(decision)
    }

    /// The host decides by itself, without Cedar (work no principal asked
    /// for, such as revoking an expired lease): recorded as allowed by the
    /// built-in rule `rule` (e.g. `builtin:lease-expiry`).
    pub(crate) fn allow_builtin(&mut self, rule: &str) -> Result<(), Error> {
        let decision = Decision {
            allowed: true,
            policies: vec![rule.to_string()],
            ..Decision::default()
        };
        self.decided(&decision)
    }

    fn decided(&mut self, decision: &Decision) -> Result<(), Error> {
        self.span.decision(decision.allowed, &decision.policies);
        self.record.decision = Verdict::from_allowed(decision.allowed);
        self.record.policies = decision.policies.clone();
        if !decision.allowed {
            self.span.outcome("denied", self.elapsed_us());
            self.append(Phase::Denied, Some("denied"))?;
            return Err(Error::Denied {
                principal: self.caller.principal.name.clone(),
                action: self.action.as_str().to_string(),
                resource: format!("{}/{}", self.record.mount, self.record.path),
                policies: decision.policies.clone(),
            });
        }
        self.append(Phase::Request, None).inspect_err(|_| {
            self.span.outcome("audit-unavailable", self.elapsed_us());
        })
    }

    /// Record how the operation ended and write the response entry; a
    /// result whose response cannot be audited is refused.
    pub(crate) fn finish<T>(self, result: Result<T, Error>) -> Result<T, Error> {
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.span.outcome(outcome, self.elapsed_us());
        self.append(Phase::Response, Some(outcome))?;
        result
    }
}

/// A request refused before it had a caller: no token or client
/// certificate, or a token that is invalid, expired or revoked.
#[derive(Clone, Debug)]
pub struct RefusedAuthentication<'a> {
    /// The front door's id of the request.
    pub request_id: &'a str,
    /// The client's address.
    pub source: &'a str,
    /// The front door used.
    pub front_door: super::FrontDoor,
    /// What the request asked for (e.g. the HTTP path), for the record.
    pub asked_for: &'a str,
    /// Why it was refused.
    pub reason: RefusalReason,
    /// A digest of the presented token (never the token): the same token
    /// always gives the same digest on one host, so repeated attempts can
    /// be told apart and correlated.
    pub token_digest: Option<String>,
}

/// Why an authentication was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// No credential at all.
    NoCredential,
    /// A token the host does not know, or no longer honours.
    InvalidToken,
}

impl RefusalReason {
    /// The built-in rule recorded as the decision's determining policy.
    pub fn rule(self) -> &'static str {
        match self {
            RefusalReason::NoCredential => "builtin:no-credential",
            RefusalReason::InvalidToken => "builtin:invalid-token",
        }
    }
}

/// Audit a refused authentication: one `denied` entry and one span, with
/// the action `authenticate`, the token's digest (or `anonymous`) as the
/// principal and the refusal's rule as the determining policy.
pub(crate) fn audit_refusal(audit: &AuditLog, refusal: &RefusedAuthentication<'_>) -> Result<(), Error> {
    let asked_for: String = refusal.asked_for.chars().take(256).collect();
    let record = AuditEvent {
        request_id: refusal.request_id.to_string(),
        phase: Phase::Denied,
        principal: refusal
            .token_digest
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |d| format!("token:{d}")),
        action: AuditAction::Authenticate,
        mount: "auth".to_string(),
        path: asked_for,
        plugin: String::new(),
        decision: Verdict::Deny,
        policies: vec![refusal.reason.rule().to_string()],
        outcome: Some("denied".to_string()),
        latency_us: Some(0),
        source: refusal.source.to_string(),
        front_door: refusal.front_door,
        lease_id: None,
    };
    let span = AccessSpan::start(&record);
    span.decision(false, &record.policies);
    span.outcome("denied", 0);
    audit
        .append(&record)
        .map_err(|err| Error::AuditUnavailable(err.to_string()))
}
