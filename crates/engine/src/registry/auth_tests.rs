use super::*;

#[test]
fn bearer_challenges() {
    let c = parse_challenge(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
    );
    assert_eq!(
        c,
        Some(Challenge::Bearer {
            realm: "https://auth.docker.io/token".into(),
            service: Some("registry.docker.io".into()),
            scopes: vec!["repository:a/b:pull,push".into()],
        })
    );
    let c = parse_challenge(
        r#"bearer realm="https://r/t", scope="repository:a:pull repository:b:pull", scope="registry:catalog:*", error="insufficient_scope""#,
    );
    let Some(Challenge::Bearer {
        scopes, service, ..
    }) = c
    else {
        panic!()
    };
    assert_eq!(
        scopes,
        [
            "repository:a:pull",
            "repository:b:pull",
            "registry:catalog:*"
        ]
    );
    assert_eq!(service, None);
    // Unquoted values and escapes.
    let c = parse_challenge(r#"Bearer realm=https://r/t,service="a\"b""#);
    assert!(
        matches!(c, Some(Challenge::Bearer { realm, service: Some(s), .. }) if realm == "https://r/t" && s == "a\"b")
    );
}

#[test]
fn basic_and_multiple_challenges() {
    assert_eq!(
        parse_challenge(r#"Basic realm="Registry Realm""#),
        Some(Challenge::Basic)
    );
    assert_eq!(
        parse_challenge("Basic realm=bench-realm"),
        Some(Challenge::Basic)
    );
    assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
    let c = parse_challenge(r#"Basic realm="x", Bearer realm="https://r/t",service="s""#);
    assert!(matches!(c, Some(Challenge::Bearer { .. })));
    assert_eq!(parse_challenge("Negotiate"), None);
    assert_eq!(parse_challenge(""), None);
    let all = parse_www_authenticate(r#"Basic realm="a b", charset="UTF-8""#);
    assert_eq!(
        all,
        vec![(
            "Basic".to_string(),
            vec![
                ("realm".into(), "a b".into()),
                ("charset".into(), "UTF-8".into())
            ]
        )]
    );
}

#[test]
fn token_responses() {
    assert_eq!(
        parse_token_response(br#"{"token":"t","expires_in":300}"#),
        Some(("t".into(), Duration::from_secs(300)))
    );
    assert_eq!(
        parse_token_response(br#"{"access_token":"a"}"#),
        Some(("a".into(), Duration::from_secs(60)))
    );
    assert_eq!(
        parse_token_response(br#"{"token":"","access_token":"a","expires_in":5}"#)
            .unwrap()
            .1,
        Duration::from_secs(60)
    );
    assert_eq!(parse_token_response(br#"{"nope":1}"#), None);
    assert_eq!(parse_token_response(b"garbage"), None);
    assert_eq!(
        scope_key(&[Scope::pull("b"), Scope::push("a"), Scope::pull("b")]),
        "repository:a:pull,push repository:b:pull"
    );
}
