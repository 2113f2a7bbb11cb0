//! Tests against real Cedar and the shipped `policies/` directory.

use super::*;
use std::path::PathBuf;
use std::time::Instant;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn principal(name: &str, groups: &[&str]) -> Principal {
    Principal {
        name: name.to_owned(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        attributes: BTreeMap::new(),
    }
}

fn secret(mount: &str, path: &str) -> Resource {
    Resource::Secret {
        mount: mount.to_owned(),
        path: path.to_owned(),
        plugin: "kv".to_owned(),
        tags: BTreeMap::new(),
    }
}

fn tagged(mount: &str, path: &str, tags: &[(&str, &str)]) -> Resource {
    Resource::Secret {
        mount: mount.to_owned(),
        path: path.to_owned(),
        plugin: "kv".to_owned(),
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn mount(name: &str) -> Resource {
    Resource::Mount {
        mount: name.to_owned(),
        plugin: "kv".to_owned(),
    }
}

fn ctx() -> RequestContext {
    RequestContext {
        time_unix: 1_700_000_000,
        source: "127.0.0.1:5000".to_owned(),
        mtls: false,
        front_door: "http",
        version: None,
        ttl_seconds: None,
        lease_id: None,
    }
}

fn examples() -> PolicyEngine {
    PolicyEngine::load_dir(&policies_dir()).expect("example policies load")
}

fn allowed(e: &PolicyEngine, p: &Principal, a: Action, r: &Resource) -> bool {
    let d = e.authorize(p, a, r, &ctx());
    assert!(d.errors.is_empty(), "unexpected errors: {:?}", d.errors);
    d.allowed
}

/// Copy the shipped policies into a fresh temporary directory.
fn temp_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["admins.cedar", "apps.cedar"] {
        std::fs::copy(policies_dir().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

const APPS_WRITE: &str = r#"
@id("apps-write")
permit (principal in Tresor::Group::"apps", action == Tresor::Action::"write", resource)
when { resource is Tresor::Secret && resource.path like "apps/*" };
"#;

#[test]
fn schema_parses_without_warnings() {
    let (schema, warnings) = Schema::from_cedarschema_str(SCHEMA).expect("schema parses");
    assert_eq!(warnings.count(), 0);
    let actions: Vec<String> = schema.actions().map(|a| a.id().escaped().to_string()).collect();
    assert_eq!(actions.len(), Action::ALL.len());
    for a in Action::ALL {
        assert!(actions.iter().any(|x| x == a.as_str()), "schema lacks action {a}");
    }
}

#[test]
fn example_policies_load_and_validate() {
    let e = examples();
    assert_eq!(
        e.policy_ids(),
        ["admins-all", "apps-read-apps", "restricted-admins-only"]
    );
    assert_eq!(e.len(), 3);
    assert!(e.warnings().is_empty(), "{:?}", e.warnings());
    assert!(e.uses_resource_tags());
}

#[test]
fn action_names_round_trip() {
    for a in Action::ALL {
        assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        assert_eq!(a.to_string().to_uppercase().parse::<Action>().unwrap(), a);
    }
    let err = "frobnicate".parse::<Action>().unwrap_err();
    assert!(err.to_string().contains("frobnicate"));
}

#[test]
fn admins_may_do_everything() {
    let e = examples();
    let admin = principal("alice", &["admins"]);
    for a in Action::ALL {
        for r in [secret("secret", "apps/x"), secret("pki", "roles/web"), mount("secret")] {
            let d = e.authorize(&admin, a, &r, &ctx());
            assert!(d.allowed, "{a} on {} denied", r.entity_id());
            assert_eq!(d.policies, ["admins-all"]);
        }
    }
    // Even restricted secrets.
    let d = e.authorize(
        &admin,
        Action::Read,
        &tagged("secret", "apps/x", &[("classification", "restricted")]),
        &ctx(),
    );
    assert!(d.allowed);
    assert_eq!(d.policies, ["admins-all"]);
}

#[test]
fn apps_read_and_list_under_apps_only() {
    let e = examples();
    let app = principal("billing", &["apps"]);
    let d = e.authorize(&app, Action::Read, &secret("secret", "apps/x"), &ctx());
    assert!(d.allowed);
    assert_eq!(d.policies, ["apps-read-apps"]);
    assert!(d.errors.is_empty());

    assert!(allowed(&e, &app, Action::List, &secret("secret", "apps/x")));
    assert!(allowed(&e, &app, Action::Read, &secret("secret", "apps/deep/er")));

    let d = e.authorize(&app, Action::Write, &secret("secret", "apps/x"), &ctx());
    assert!(!d.allowed);
    assert!(d.policies.is_empty(), "default deny names no policy: {:?}", d.policies);

    assert!(!allowed(&e, &app, Action::Read, &secret("secret", "other/x")));
    assert!(!allowed(&e, &app, Action::Read, &secret("secret", "apps")));
    assert!(!allowed(&e, &app, Action::Read, &secret("kv", "apps/x")), "other mount");
    assert!(!allowed(&e, &app, Action::Delete, &secret("secret", "apps/x")));
    assert!(!allowed(&e, &app, Action::List, &mount("secret")));
}

#[test]
fn unknown_principal_is_denied_by_default() {
    let e = examples();
    let nobody = principal("mallory", &[]);
    for a in Action::ALL {
        let d = e.authorize(&nobody, a, &secret("secret", "apps/x"), &ctx());
        assert!(!d.allowed);
        assert!(d.policies.is_empty());
        assert!(d.errors.is_empty());
    }
    // A group name is not a principal name.
    assert!(!allowed(
        &e,
        &principal("admins", &[]),
        Action::Read,
        &secret("secret", "apps/x")
    ));
}

#[test]
fn restricted_tag_forbids_apps() {
    let e = examples();
    let app = principal("billing", &["apps"]);
    let restricted = tagged(
        "secret",
        "apps/x",
        &[("classification", "restricted"), ("owner", "ops")],
    );
    let d = e.authorize(&app, Action::Read, &restricted, &ctx());
    assert!(!d.allowed);
    assert_eq!(d.policies, ["restricted-admins-only"]);
    assert!(d.errors.is_empty());
    // Other classifications, and other actions, are unaffected.
    assert!(allowed(
        &e,
        &app,
        Action::Read,
        &tagged("secret", "apps/x", &[("classification", "internal")])
    ));
    assert!(allowed(&e, &app, Action::List, &restricted));
}

#[test]
fn ids_default_to_stem_and_index() {
    let text = r#"
        permit (principal in Tresor::Group::"a", action == Tresor::Action::"read", resource);
        @id("named") permit (principal in Tresor::Group::"b", action == Tresor::Action::"read", resource);
        permit (principal in Tresor::Group::"c", action == Tresor::Action::"read", resource);
    "#;
    let e = PolicyEngine::from_text("inline.cedar", text).unwrap();
    assert_eq!(e.policy_ids(), ["inline:0", "named", "inline:2"]);
    let d = e.authorize(&principal("p", &["a", "c"]), Action::Read, &secret("m", "x"), &ctx());
    assert!(d.allowed);
    assert_eq!(d.policies, ["inline:0", "inline:2"]);
    let d = e.authorize(&principal("p", &["b"]), Action::Read, &secret("m", "x"), &ctx());
    assert_eq!(d.policies, ["named"]);
}

#[test]
fn principal_tags_context_and_mounts() {
    let text = r#"
        @id("payments-team")
        permit (principal, action == Tresor::Action::"read", resource)
        when {
            principal.hasTag("team") && principal.getTag("team") == "payments" &&
            resource is Tresor::Secret && resource.mount == "secret" &&
            context.mtls && context.front_door == "http" && context.source != "local"
        };
        @id("short-leases")
        permit (principal, action == Tresor::Action::"issue", resource in Tresor::Mount::"pki")
        when { context has ttl && context.ttl <= 3600 && context.time > 0 };
        @id("pinned-version")
        permit (principal, action == Tresor::Action::"read", resource == Tresor::Secret::"secret/pinned")
        when { context has version && context.version == "3" };
        @id("mount-admin")
        permit (principal == Tresor::Principal::"ops", action == Tresor::Action::"admin", resource is Tresor::Mount)
        when { resource.plugin == "kv" };
    "#;
    let e = PolicyEngine::from_text("ctx.cedar", text).unwrap();
    assert!(!e.uses_resource_tags(), "only principal tags are used");

    let mut payer = principal("svc", &[]);
    payer.attributes.insert("team".into(), "payments".into());
    let mut c = ctx();
    c.mtls = true;
    let d = e.authorize(&payer, Action::Read, &secret("secret", "any"), &c);
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.policies, ["payments-team"]);
    assert!(
        !e.authorize(&payer, Action::Read, &secret("secret", "any"), &ctx())
            .allowed,
        "needs mtls"
    );
    assert!(
        !e.authorize(&principal("svc", &[]), Action::Read, &secret("secret", "any"), &c)
            .allowed,
        "needs tag"
    );

    let mut c = ctx();
    assert!(
        !e.authorize(&payer, Action::Issue, &secret("pki", "roles/web"), &c)
            .allowed,
        "no ttl"
    );
    c.ttl_seconds = Some(600);
    assert!(
        e.authorize(&payer, Action::Issue, &secret("pki", "roles/web"), &c)
            .allowed
    );
    assert!(
        e.authorize(&payer, Action::Issue, &mount("pki"), &c).allowed,
        "a mount is `in` itself"
    );
    c.ttl_seconds = Some(7200);
    assert!(
        !e.authorize(&payer, Action::Issue, &secret("pki", "roles/web"), &c)
            .allowed
    );

    let mut c = ctx();
    c.version = Some("3".into());
    assert!(
        e.authorize(&payer, Action::Read, &secret("secret", "pinned"), &c)
            .allowed
    );
    c.version = Some("2".into());
    assert!(
        !e.authorize(&payer, Action::Read, &secret("secret", "pinned"), &c)
            .allowed
    );

    assert!(
        e.authorize(&principal("ops", &[]), Action::Admin, &mount("secret"), &ctx())
            .allowed
    );
    assert!(
        !e.authorize(&principal("ops", &[]), Action::Admin, &secret("secret", "x"), &ctx())
            .allowed
    );
}

#[test]
fn evaluation_errors_never_allow() {
    // Long overflow is a runtime error the validator cannot rule out.
    let text = r#"
        @id("overflowing-permit")
        permit (principal, action == Tresor::Action::"read", resource)
        when { context.time * 9223372036854775807 > 0 };
        @id("plain-permit")
        permit (principal, action == Tresor::Action::"write", resource);
        @id("overflowing-forbid")
        forbid (principal, action == Tresor::Action::"write", resource)
        when { context.time * 9223372036854775807 > 0 };
    "#;
    let e = PolicyEngine::from_text("errors.cedar", text).unwrap();
    let d = e.authorize(&principal("p", &[]), Action::Read, &secret("m", "x"), &ctx());
    assert!(!d.allowed);
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    assert!(d.errors[0].starts_with("policy overflowing-permit:"), "{:?}", d.errors);

    let d = e.authorize(&principal("p", &[]), Action::Write, &secret("m", "x"), &ctx());
    assert!(!d.allowed, "an erroring forbid must not let the permit through");
    assert_eq!(d.policies, ["overflowing-forbid"]);
    assert!(
        d.errors.iter().any(|m| m.contains("overflowing-forbid")),
        "{:?}",
        d.errors
    );

    // Without the error the forbid does not match and the permit allows.
    let mut c = ctx();
    c.time_unix = 0;
    let d = e.authorize(&principal("p", &[]), Action::Write, &secret("m", "x"), &c);
    assert!(d.allowed);
    assert_eq!(d.policies, ["plain-permit"]);
}

#[test]
fn syntax_error_is_refused_and_previous_set_stays() {
    let e = examples();
    let app = principal("billing", &["apps"]);
    let before = e.authorize(&app, Action::Read, &secret("secret", "apps/x"), &ctx());
    assert!(before.allowed);

    let broken = "// comment\n\npermit (principal, action, resource)\nwhen { principal.name == };\n";
    let err = e.replace_text("broken.cedar", broken).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(
        matches!(err, PolicyError::Parse { ref file, .. } if file == "broken.cedar"),
        "{err:?}"
    );
    assert!(msg.contains("broken.cedar:4:"), "diagnostic names file and line: {msg}");
    assert!(msg.contains("previous policy set stays active"), "{msg}");

    assert_eq!(
        e.authorize(&app, Action::Read, &secret("secret", "apps/x"), &ctx()),
        before
    );
    assert_eq!(e.len(), 3);
}

#[test]
fn schema_invalid_policy_is_refused_and_previous_set_stays() {
    let e = examples();
    let app = principal("billing", &["apps"]);
    let text = "@id(\"ok\")\npermit (principal, action, resource is Tresor::Mount);\n\n@id(\"bad-attr\")\npermit (principal, action, resource is Tresor::Secret)\n  when { resource.nonexistent == \"x\" };\n";
    let err = e.replace_text("typo.cedar", text).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, PolicyError::Validation { .. }), "{err:?}");
    assert!(msg.contains("typo.cedar:6:"), "{msg}");
    assert!(msg.contains("bad-attr"), "{msg}");
    assert!(msg.contains("nonexistent"), "{msg}");
    assert!(allowed(&e, &app, Action::Read, &secret("secret", "apps/x")));
    assert!(!allowed(&e, &app, Action::Read, &mount("secret")));

    // Unknown entity types and actions too.
    for bad in [
        "permit (principal in Tresor::Team::\"x\", action, resource);",
        "permit (principal, action == Tresor::Action::\"frobnicate\", resource);",
        "permit (principal, action, resource) when { resource.getTag(\"x\") == \"y\" };",
    ] {
        let err = e.replace_text("bad.cedar", bad).unwrap_err();
        assert!(matches!(err, PolicyError::Validation { .. }), "{bad}: {err:?}");
    }
    assert_eq!(e.len(), 3);

    // A valid replacement is taken.
    e.replace_text(
        "open.cedar",
        "permit (principal, action == Tresor::Action::\"list\", resource);",
    )
    .unwrap();
    assert_eq!(e.policy_ids(), ["open:0"]);
    assert!(!e.uses_resource_tags());
    assert!(allowed(&e, &principal("x", &[]), Action::List, &mount("secret")));
    assert!(!allowed(&e, &app, Action::Read, &secret("secret", "apps/x")));
}

#[test]
fn other_refusals() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "not policy").unwrap();
    let err = PolicyEngine::load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, PolicyError::NoPolicies { .. }), "{err:?}");
    println!("{err}");

    let err = PolicyEngine::load_dir(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, PolicyError::Io { .. }), "{err:?}");

    std::fs::write(dir.path().join("empty.cedar"), "// nothing yet\n").unwrap();
    let err = PolicyEngine::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, PolicyError::EmptyFile { ref file } if file == "empty.cedar"),
        "{err:?}"
    );

    std::fs::write(
        dir.path().join("empty.cedar"),
        "@id(\"x\") permit (principal, action, resource);",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("more.cedar"),
        "@id(\"x\") forbid (principal, action, resource);",
    )
    .unwrap();
    let err = PolicyEngine::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(err, PolicyError::DuplicateId { ref id, .. } if id == "x"),
        "{err:?}"
    );
    println!("{err}");

    let err = PolicyEngine::from_text("t.cedar", "permit (principal == ?principal, action, resource);").unwrap_err();
    assert!(matches!(err, PolicyError::Parse { .. }), "{err:?}");

    let e = PolicyEngine::from_text("t.cedar", "permit (principal, action, resource);").unwrap();
    assert!(matches!(e.reload(), Err(PolicyError::NoDirectory)));
}

#[test]
fn reload_picks_up_changes_and_keeps_set_on_error() {
    let dir = temp_policies();
    let e = PolicyEngine::load_dir(dir.path()).unwrap();
    let app = principal("billing", &["apps"]);
    assert!(!e.reload().unwrap(), "unchanged directory");
    assert!(!allowed(&e, &app, Action::Write, &secret("secret", "apps/x")));

    // A new file.
    std::fs::write(dir.path().join("write.cedar"), APPS_WRITE).unwrap();
    assert!(e.reload().unwrap());
    assert_eq!(e.len(), 4);
    let d = e.authorize(&app, Action::Write, &secret("secret", "apps/x"), &ctx());
    assert!(d.allowed);
    assert_eq!(d.policies, ["apps-write"]);
    assert!(!e.reload().unwrap());

    // A broken edit is refused; decisions stay.
    std::fs::write(
        dir.path().join("write.cedar"),
        "permit (principal, action, resource) when { resource.nope };",
    )
    .unwrap();
    let err = e.reload().unwrap_err();
    assert!(matches!(err, PolicyError::Validation { .. }), "{err:?}");
    assert!(err.to_string().contains("write.cedar:1:"), "{err}");
    assert!(allowed(&e, &app, Action::Write, &secret("secret", "apps/x")));
    std::fs::write(
        dir.path().join("write.cedar"),
        "permit (principal, action, resource) when {",
    )
    .unwrap();
    assert!(matches!(e.reload(), Err(PolicyError::Parse { .. })));
    assert!(allowed(&e, &app, Action::Write, &secret("secret", "apps/x")));
    assert_eq!(e.len(), 4);

    // Removing the file is a change too; editor lock files are ignored.
    std::fs::remove_file(dir.path().join("write.cedar")).unwrap();
    std::fs::write(dir.path().join(".#apps.cedar"), "garbage").unwrap();
    assert!(e.reload().unwrap());
    assert_eq!(e.len(), 3);
    assert!(!allowed(&e, &app, Action::Write, &secret("secret", "apps/x")));

    // replace_text, then reload reinstalls the directory.
    e.replace_text("x.cedar", "permit (principal, action, resource);")
        .unwrap();
    assert!(allowed(&e, &principal("nobody", &[]), Action::Admin, &mount("m")));
    assert!(e.reload().unwrap());
    assert!(!allowed(&e, &principal("nobody", &[]), Action::Admin, &mount("m")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_in_the_background() {
    let dir = temp_policies();
    let e = Arc::new(PolicyEngine::load_dir(dir.path()).unwrap());
    let handle = e.watch(Duration::from_millis(20));
    let app = principal("billing", &["apps"]);
    std::fs::write(dir.path().join("write.cedar"), APPS_WRITE).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !allowed(&e, &app, Action::Write, &secret("secret", "apps/x")) {
        assert!(Instant::now() < deadline, "watch did not pick up the new file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A broken file is refused by the watcher; the set stays.
    std::fs::write(dir.path().join("write.cedar"), "permit (").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(allowed(&e, &app, Action::Write, &secret("secret", "apps/x")));
    handle.abort();
}

#[test]
fn request_entities_conform_to_schema() {
    // authorize() skips per-request schema checks of the request and the
    // entities it builds; make sure they would pass them.
    let model = Model::new().unwrap();
    let mut p = principal("svc", &["apps", "admins", "apps"]);
    p.attributes.insert("team".into(), "payments".into());
    for r in [
        tagged("secret", "apps/x", &[("classification", "restricted")]),
        mount("secret"),
    ] {
        let mut c = ctx();
        c.version = Some("1".into());
        c.ttl_seconds = Some(30);
        for (i, action) in Action::ALL.into_iter().enumerate() {
            if i % 2 == 0 {
                c.version = None;
                c.ttl_seconds = None;
            }
            let (request, entities) = model.request(&p, action, &r, &c).unwrap();
            let all: Vec<Entity> = entities.iter().cloned().collect();
            Entities::from_entities(all, Some(model.schema())).expect("entities conform to the schema");
            Request::new(
                request.principal().unwrap().clone(),
                request.action().unwrap().clone(),
                request.resource().unwrap().clone(),
                request.context().unwrap().clone(),
                Some(model.schema()),
            )
            .expect("request conforms to the schema");
        }
    }
}

#[test]
fn engine_is_send_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<PolicyEngine>();
    check::<Arc<PolicyEngine>>();
}

#[test]
fn rough_authorize_cost() {
    let e = examples();
    let app = principal("billing", &["apps", "ci"]);
    let r = tagged("secret", "apps/db", &[("owner", "ops")]);
    let n = if cfg!(debug_assertions) { 2_000 } else { 20_000 };
    let start = Instant::now();
    let mut allowed = 0;
    for _ in 0..n {
        allowed += usize::from(e.authorize(&app, Action::Read, &r, &ctx()).allowed);
    }
    let per = start.elapsed() / n as u32;
    assert_eq!(allowed, n);

    // Breakdown: building the request and entities vs evaluating.
    let start = Instant::now();
    for _ in 0..n {
        let _ = e.model.request(&app, Action::Read, &r, &ctx()).unwrap();
    }
    let build = start.elapsed() / n as u32;
    let (request, entities) = e.model.request(&app, Action::Read, &r, &ctx()).unwrap();
    let all: Vec<Entity> = entities.iter().cloned().collect();
    let start = Instant::now();
    for _ in 0..n {
        let _ = Entities::from_entities(all.clone(), Some(e.model.schema())).unwrap();
    }
    let checked = start.elapsed() / n as u32;
    let loaded = e.current();
    let start = Instant::now();
    for _ in 0..n {
        let _ = e.model.authorizer.is_authorized(&request, &loaded.set, &entities);
    }
    let eval = start.elapsed() / n as u32;
    println!(
        "authorize(): {per:?} per call over {n} calls ({} build): request+entities {build:?}, \
         evaluation {eval:?}; schema-checked entity store would cost {checked:?}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}
