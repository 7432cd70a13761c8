//! Issue 11: the issuer recipes in docs/recipes.md parse, log in the token each
//! is meant for, and refuse a token of another repository, branch, namespace or
//! tenant — through the same pure path the module uses (verify, group mapping,
//! account rules, policy).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use oidc_core::Config;
use oidc_core::Jwks;
use oidc_core::{verify, Keys, Report};
use serde_json::{json, Value};
use std::path::Path;

const NOW: i64 = 1_800_000_000;

fn keys() -> Value {
    serde_json::from_str(include_str!("fixtures/test-keys.json")).unwrap()
}

fn sign(claims: &Value) -> String {
    let k = keys();
    let ek = EncodingKey::from_rsa_pem(k["rsa"]["pem"].as_str().unwrap().as_bytes()).unwrap();
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}).to_string());
    let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = oidc_core::crypto::sign(input.as_bytes(), &ek, Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

/// (heading, TOML) of every ```toml block in docs/recipes.md.
fn recipes() -> Vec<(String, String)> {
    let text = include_str!("../../docs/recipes.md");
    let mut out = vec![];
    let mut heading = String::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line) {
            (None, l) if l.starts_with("## ") => heading = l[3..].to_string(),
            (None, "```toml") => block = Some(String::new()),
            (Some(b), "```") => {
                out.push((heading.clone(), std::mem::take(b)));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

fn recipe(name: &str) -> Config {
    let (_, toml) = recipes().into_iter().find(|(h, _)| h.starts_with(name)).unwrap_or_else(|| panic!("{name}"));
    Config::parse(&format!("version = 1\n{toml}"), Path::new("docs/recipes.md"))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// What the module decides for `user` presenting a token with `claims`:
/// Ok((account, host groups, warnings)) or Err(code).
fn login(cfg: &Config, claims: &Value, user: &str) -> Result<(String, Vec<String>, Vec<String>), &'static str> {
    let k = keys();
    let jwks = Jwks::from_value(&json!({"keys": [k["rsa"]["jwk"]]})).unwrap();
    let tok = sign(claims);
    let p = oidc_core::parse_token(&tok, 16384).map_err(|e| e.code())?;
    let iss = p.issuer().map_err(|e| e.code())?;
    let icfg = cfg.issuer(iss).ok_or("untrusted-issuer")?;
    let v = verify(&p, icfg, Keys { jwks: Some(&jwks), hmac_secret: None }, NOW, &mut Report::default())
        .map_err(|e| e.code())?;
    let (host, mut warnings) = oidc_core::map_groups(&v.groups, icfg, cfg);
    warnings.extend(v.warnings.clone());
    let host: Vec<String> = host.into_iter().map(|h| h.name).collect();
    let how = oidc_core::account_for(cfg, &v, user, &host).map_err(|e| e.code())?;
    oidc_core::check_groups(&host, &v.groups, &cfg.policy, &[]).map_err(|e| e.code())?;
    Ok((how.unwrap_or_else(|| format!("own account {} ({})", v.username, v.identity)), host, warnings))
}

fn base(iss: &str, aud: &str) -> Value {
    json!({"iss": iss, "aud": aud, "sub": "s-1", "exp": NOW + 300, "iat": NOW - 5, "nbf": NOW - 5})
}

fn with(c: &Value, f: impl FnOnce(&mut Value)) -> Value {
    let mut c = c.clone();
    f(&mut c);
    c
}

#[test]
fn every_recipe_parses() {
    let all = recipes();
    assert!(all.len() >= 8, "{all:?}");
    for (h, toml) in all {
        Config::parse(&format!("version = 1\n{toml}"), Path::new("docs/recipes.md"))
            .unwrap_or_else(|e| panic!("{h}: {e}"));
    }
}

#[test]
fn github_actions_only_the_configured_repo_branch_and_environment() {
    let cfg = recipe("GitHub Actions");
    let gh = "https://token.actions.githubusercontent.com";
    let good = with(&base(gh, "pam-oidc:prod-hosts"), |c| {
        let o = c.as_object_mut().unwrap();
        for (k, v) in [
            ("sub", "repo:acme/infra:environment:prod"),
            ("repository", "acme/infra"),
            ("repository_owner", "acme"),
            ("repository_owner_id", "1342004"),
            ("ref", "refs/heads/main"),
            ("environment", "prod"),
            ("event_name", "push"),
            ("job_workflow_ref", "acme/infra/.github/workflows/deploy.yml@refs/heads/main"),
        ] {
            o.insert(k.into(), json!(v));
        }
    });
    let (how, _, _) = login(&cfg, &good, "deploy").unwrap();
    assert!(how.contains("role account deploy"), "{how}");
    let refused = [
        ("another repository", with(&good, |c| c["repository"] = json!("acme/website")), "no-account-rule"),
        ("a feature branch", with(&good, |c| c["ref"] = json!("refs/heads/feature")), "no-account-rule"),
        (
            "a pull_request event",
            with(&good, |c| {
                c["event_name"] = json!("pull_request");
                c["ref"] = json!("refs/pull/7/merge");
            }),
            "no-account-rule",
        ),
        ("another environment", with(&good, |c| c["environment"] = json!("staging")), "no-account-rule"),
        (
            "another organisation's repo of the same name",
            with(&good, |c| c["repository_owner_id"] = json!("666")),
            "claim-condition",
        ),
        ("another issuer", with(&good, |c| c["iss"] = json!("https://gitlab.com")), "untrusted-issuer"),
        (
            "an access token's audience",
            with(&good, |c| c["aud"] = json!("https://github.com/acme")),
            "audience-mismatch",
        ),
    ];
    for (what, claims, code) in refused {
        assert_eq!(login(&cfg, &claims, "deploy").unwrap_err(), code, "{what}");
    }
    // A job never gets a name of its own, nor another role account.
    assert_eq!(login(&cfg, &good, "acme").unwrap_err(), "no-account-rule");
    assert_eq!(login(&cfg, &good, "root").unwrap_err(), "no-account-rule");
}

#[test]
fn public_issuers_need_a_tenant_condition() {
    for (url, claim) in [
        ("https://token.actions.githubusercontent.com", "repository_owner_id"),
        ("https://gitlab.com", "namespace_id"),
        ("https://accounts.google.com", "hd"),
        ("https://login.microsoftonline.com/common/v2.0", "tid"),
    ] {
        let bare = format!("version = 1\n[[issuer]]\nurl = \"{url}\"\naudiences = [\"a\"]\nuser_accounts = false\n");
        let e = Config::parse(&bare, Path::new("t.toml")).unwrap_err();
        assert!(e.message.contains("issues tokens to anyone"), "{url}: {e}");
        let bound = format!("{bare}[issuer.require]\n{claim} = \"x\"\n");
        assert!(Config::parse(&bound, Path::new("t.toml")).is_ok(), "{url}");
        let glob = format!("{bare}[issuer.require]\n{claim} = \"x*\"\n");
        assert!(Config::parse(&glob, Path::new("t.toml")).is_err(), "{url}: a glob binds no tenant");
    }
    // A renamable name is not a tenant binding (an org can be renamed and its name re-registered).
    let by_name =
        "version = 1\n[[issuer]]\nurl = \"https://token.actions.githubusercontent.com\"\naudiences = [\"a\"]\n\
        user_accounts = false\n[issuer.require]\nrepository_owner = \"acme\"\n";
    assert!(Config::parse(by_name, Path::new("t.toml")).is_err());
}

#[test]
fn gitlab_ci_only_the_configured_project_and_protected_branch() {
    let cfg = recipe("GitLab CI");
    let good = with(&base("https://gitlab.com", "pam-oidc"), |c| {
        let o = c.as_object_mut().unwrap();
        for (k, v) in [
            ("sub", "project_path:acme/infra:ref_type:branch:ref:main"),
            ("namespace_id", "6543210"),
            ("namespace_path", "acme"),
            ("project_path", "acme/infra"),
            ("ref_type", "branch"),
            ("ref", "main"),
            ("ref_protected", "true"),
            ("environment", "production"),
        ] {
            o.insert(k.into(), json!(v));
        }
    });
    assert!(login(&cfg, &good, "deploy").is_ok());
    for (what, claims, code) in [
        ("another project", with(&good, |c| c["project_path"] = json!("acme/tools")), "no-account-rule"),
        ("a feature branch", with(&good, |c| c["ref"] = json!("feature")), "no-account-rule"),
        ("an unprotected ref", with(&good, |c| c["ref_protected"] = json!("false")), "no-account-rule"),
        ("another namespace", with(&good, |c| c["namespace_id"] = json!("1")), "claim-condition"),
    ] {
        assert_eq!(login(&cfg, &claims, "deploy").unwrap_err(), code, "{what}");
    }
}

#[test]
fn kubernetes_service_account_of_one_namespace() {
    let cfg = recipe("Kubernetes");
    let iss = cfg.issuers[0].url.clone();
    let good = with(&base(&iss, "pam-oidc"), |c| {
        c["sub"] = json!("system:serviceaccount:ci:deployer");
        c["kubernetes.io"] = json!({"namespace": "ci", "serviceaccount": {"name": "deployer", "uid": "8a1b"},
            "pod": {"name": "runner-1", "uid": "77"}});
    });
    assert!(login(&cfg, &good, "k8s-deployer").unwrap().0.contains("k8s-deployer"));
    let other_ns = with(&good, |c| c["kubernetes.io"]["namespace"] = json!("default"));
    assert_eq!(login(&cfg, &other_ns, "k8s-deployer").unwrap_err(), "no-account-rule");
    let other_sa = with(&good, |c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("builder"));
    assert_eq!(login(&cfg, &other_sa, "k8s-deployer").unwrap_err(), "no-account-rule");
}

#[test]
fn okta_logins_of_one_domain() {
    let cfg = recipe("Okta");
    let good = with(&base(&cfg.issuers[0].url.clone(), "0oa1host2login3client"), |c| {
        c["preferred_username"] = json!("Alice@acme.com");
        c["groups"] = json!(["devs", "Everyone"]);
    });
    let (how, groups, warnings) = login(&cfg, &good, "alice").unwrap();
    assert!(how.contains("own account alice"), "{how}");
    assert_eq!(groups, ["devs"], "{warnings:?}");
    let other = with(&good, |c| c["preferred_username"] = json!("alice@evil.com"));
    assert_eq!(login(&cfg, &other, "alice").unwrap_err(), "invalid-username");
}

#[test]
fn entra_identity_is_oid_across_clients_and_tenant_bound() {
    let cfg = recipe("Microsoft Entra ID");
    let iss = cfg.issuers[0].url.clone();
    let first = with(&base(&iss, "6731de76-14a6-49ae-97bc-6eba6914391e"), |c| {
        c["sub"] = json!("pairwise-for-app-1");
        c["oid"] = json!("00000000-0000-0000-0000-00000000a11c");
        c["tid"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
        c["preferred_username"] = json!("alice@acme.com");
        c["groups"] = json!(["b8b2c3d4-0000-4000-8000-00000000a001", "ffffffff-0000-4000-8000-000000000000"]);
    });
    let (a, groups, _) = login(&cfg, &first, "alice").unwrap();
    assert_eq!(groups, ["ops-admins"], "only mapped group ids become host groups");
    // A second client of the same tenant: another pairwise sub, the same oid.
    let second = with(&first, |c| {
        c["aud"] = json!("1950a258-227b-4e31-a9cf-717495945fc2");
        c["sub"] = json!("pairwise-for-app-2");
    });
    let (b, _, _) = login(&cfg, &second, "alice").unwrap();
    assert_eq!(a, b, "the same identity (oid), whatever the client");
    assert!(a.contains("00000000-0000-0000-0000-00000000a11c"), "{a}");
    let other_tenant = with(&first, |c| c["tid"] = json!("11111111-2222-3333-4444-555555555555"));
    assert_eq!(login(&cfg, &other_tenant, "alice").unwrap_err(), "claim-condition");
    // Group overage: logged as such, the login goes on without groups.
    let overage = with(&first, |c| {
        c.as_object_mut().unwrap().remove("groups");
        c["_claim_names"] = json!({"groups": "src1"});
        c["_claim_sources"] =
            json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}});
    });
    let (_, groups, warnings) = login(&cfg, &overage, "alice").unwrap();
    assert!(groups.is_empty());
    assert!(warnings.iter().any(|w| w.contains("groups not in token: overage")), "{warnings:?}");
}

#[test]
fn google_needs_the_workspace_domain_and_a_verified_email() {
    let cfg = recipe("Google");
    let good = with(&base("accounts.google.com", "123456789012-abc.apps.googleusercontent.com"), |c| {
        c["email"] = json!("alice@acme.com");
        c["email_verified"] = json!(true);
        c["hd"] = json!("acme.com");
    });
    assert!(login(&cfg, &good, "alice").is_ok(), "the alias iss is accepted");
    for (what, claims) in [
        ("a consumer account", with(&good, |c| drop(c.as_object_mut().unwrap().remove("hd")))),
        ("another Workspace", with(&good, |c| c["hd"] = json!("evil.com"))),
        ("an unverified email", with(&good, |c| c["email_verified"] = json!(false))),
    ] {
        assert_eq!(login(&cfg, &claims, "alice").unwrap_err(), "claim-condition", "{what}");
    }
}

#[test]
fn keycloak_realm_roles_and_cognito_groups_drive_groups() {
    let kc = recipe("Keycloak");
    let t = with(&base("https://sso.acme.com/realms/ops", "host-login"), |c| {
        c["preferred_username"] = json!("alice");
        c["realm_access"] = json!({"roles": ["ops", "offline_access", "Admin"]});
    });
    let (_, groups, warnings) = login(&kc, &t, "alice").unwrap();
    assert_eq!(groups, ["ops", "offline_access"]);
    assert!(warnings.iter().any(|w| w.contains("Admin")), "{warnings:?}");
    let cg = recipe("Amazon Cognito");
    let t = with(&base(&cg.issuers[0].url.clone(), "4p1nhostlogin0client0id00"), |c| {
        c["cognito:username"] = json!("alice");
        c["cognito:groups"] = json!(["devs", "wheel"]);
    });
    let (_, groups, warnings) = login(&cg, &t, "alice").unwrap();
    assert_eq!(groups, ["devs"]);
    assert!(warnings.iter().any(|w| w.contains("wheel")), "{warnings:?}");
}

/// The logged reason of a role-account refusal says each thing once: the
/// account once, and one clause per distinct unmet rule.
#[test]
fn role_account_refusal_names_each_reason_once() {
    let gh = "https://token.actions.githubusercontent.com";
    let cfg = Config::parse(
        &format!(
            "version = 1\n[[issuer]]\nurl = \"{gh}\"\naudiences = [\"h\"]\nuser_accounts = false\nrequire = {{ repository_owner_id = \"1\" }}\n\
             [[role_account]]\nname = \"deploy\"\nissuer = \"{gh}\"\nrequire = {{ repository = \"acme/infra\" }}\n\
             [[role_account]]\nname = \"deploy\"\nissuer = \"{gh}\"\nrequire = {{ repository = \"acme/infra\" }}\n"
        ),
        Path::new("t.toml"),
    )
    .unwrap();
    let claims = with(&base(gh, "h"), |c| {
        c["repository_owner_id"] = json!("1");
        c["repository"] = json!("evil/fork");
    });
    let k = keys();
    let jwks = Jwks::from_value(&json!({"keys": [k["rsa"]["jwk"]]})).unwrap();
    let tok = sign(&claims);
    let p = oidc_core::parse_token(&tok, 16384).unwrap();
    let v = verify(&p, &cfg.issuers[0], Keys { jwks: Some(&jwks), hmac_secret: None }, NOW, &mut Report::default())
        .unwrap();
    let why = oidc_core::account_for(&cfg, &v, "deploy", &[]).unwrap_err().to_string();
    assert_eq!(why.matches("deploy").count(), 1, "{why}");
    assert_eq!(why.matches("evil/fork").count(), 1, "{why}");
}

/// The issuer blocks docs/tokens.md shows next to each CI source of the
/// `pam-oidc` client parse as host configuration.
#[test]
fn the_client_docs_issuer_blocks_parse() {
    let text = include_str!("../../docs/tokens.md");
    let blocks: Vec<&str> = text
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .filter(|b| b.lines().any(|l| l == "[[issuer]]"))
        .collect();
    assert!(blocks.len() >= 3, "{blocks:?}");
    for b in blocks {
        Config::parse(&format!("version = 1\n{b}\n"), Path::new("docs/tokens.md"))
            .unwrap_or_else(|e| panic!("{e}\n{b}"));
    }
}
