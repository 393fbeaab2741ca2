use super::*;

fn env_in(dir: &Path) -> CredentialEnv {
    CredentialEnv {
        home: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn basic(c: &Credential) -> (&str, &str) {
    match &c.secret {
        Secret::Basic { username, password } => (username, password),
        other => panic!(
            "not basic: {:?}",
            matches!(other, Secret::IdentityToken { .. })
        ),
    }
}

#[test]
fn env_vars_win_for_their_registry_only() {
    let d = tempfile::tempdir().unwrap();
    let env = CredentialEnv {
        username: Some("u".into()),
        password: Some("p".into()),
        env_registry: Some("h:5000".into()),
        ..env_in(d.path())
    };
    let c = lookup(&env, "h:5000").unwrap().unwrap();
    assert_eq!(basic(&c), ("u", "p"));
    assert!(c.source.contains("KILN_REGISTRY_USERNAME"));
    assert!(!format!("{c:?}").contains('p'.to_string().repeat(2).as_str()));
    // Another registry (a base elsewhere) does not get them, nor does any when no registry is named.
    assert_eq!(lookup(&env, "other.example.com").unwrap(), None);
    let unscoped = CredentialEnv {
        env_registry: None,
        ..env
    };
    assert_eq!(lookup(&unscoped, "h:5000").unwrap(), None);
}

#[test]
fn docker_config_auth_and_fields() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join(".docker/config.json");
    let auth = B64.encode("alice:s3cr:et");
    write(
        &cfg,
        &format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},
            "https://index.docker.io/v1/":{{"username":"bob","password":"pw"}},
            "https://ghcr.io":{{"auth":"","identitytoken":"refresh"}}}}}}"#
        ),
    );
    let env = env_in(d.path());
    let c = lookup(&env, "127.0.0.1:5000").unwrap().unwrap();
    assert_eq!(basic(&c), ("alice", "s3cr:et"));
    assert_eq!(c.source, r#"~/.docker/config.json auths["127.0.0.1:5000"]"#);
    let c = lookup(&env, "docker.io").unwrap().unwrap();
    assert_eq!(basic(&c), ("bob", "pw"));
    let c = lookup(&env, "ghcr.io").unwrap().unwrap();
    assert!(matches!(&c.secret, Secret::IdentityToken { token, .. } if token == "refresh"));
    assert!(lookup(&env, "other.io").unwrap().is_none());
    assert!(!format!("{c:?}").contains("refresh"));
}

#[test]
fn docker_config_env_dir_and_podman_files() {
    let d = tempfile::tempdir().unwrap();
    let a = B64.encode("x:y");
    write(
        &d.path().join("dc/config.json"),
        &format!(r#"{{"auths":{{"a.io":{{"auth":"{a}"}}}}}}"#),
    );
    write(
        &d.path().join("run/containers/auth.json"),
        &format!(r#"{{"auths":{{"b.io":{{"auth":"{a}"}}}}}}"#),
    );
    write(
        &d.path().join("explicit.json"),
        r#"{"auths":{"a.io":{"username":"e","password":"f"}}}"#,
    );
    let mut env = CredentialEnv {
        docker_config_dir: Some(d.path().join("dc")),
        xdg_runtime_dir: Some(d.path().join("run")),
        ..env_in(d.path())
    };
    assert_eq!(basic(&lookup(&env, "a.io").unwrap().unwrap()), ("x", "y"));
    let c = lookup(&env, "b.io").unwrap().unwrap();
    assert_eq!(c.source, r#"~/run/containers/auth.json auths["b.io"]"#);
    env.registry_auth_file = Some(d.path().join("explicit.json"));
    assert_eq!(basic(&lookup(&env, "a.io").unwrap().unwrap()), ("e", "f"));
}

#[test]
fn helpers_run_with_server_url_on_stdin() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-kilntest");
    // Answers only for Docker Hub's key; echoes which server it was asked for as the username.
    write(
        &helper,
        "#!/bin/sh\nread s\nif [ \"$s\" = https://index.docker.io/v1/ ] || [ \"$s\" = h.io ]; then \
         printf '{\"ServerURL\":\"%s\",\"Username\":\"%s\",\"Secret\":\"S\"}' \"$s\" \"$s\"; \
         else echo 'credentials not found in native keychain'; exit 1; fi\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    write(
        &d.path().join(".docker/config.json"),
        r#"{"credsStore":"kilntest","credHelpers":{"h.io":"kilntest","gone.io":"kiln-missing"},
           "auths":{"z.io":{"username":"zu","password":"zp"}}}"#,
    );
    let env = CredentialEnv {
        path: Some(format!("{}:/usr/bin:/bin", bin.display()).into()),
        ..env_in(d.path())
    };
    let c = lookup(&env, "docker.io").unwrap().unwrap();
    assert_eq!(basic(&c), ("https://index.docker.io/v1/", "S"));
    assert_eq!(
        c.source,
        "docker-credential-kilntest (credsStore in ~/.docker/config.json)"
    );
    let c = lookup(&env, "h.io").unwrap().unwrap();
    assert!(c.source.contains("credHelpers"));
    // Not in the store: falls back to auths.
    assert_eq!(basic(&lookup(&env, "z.io").unwrap().unwrap()), ("zu", "zp"));
    let e = lookup(&env, "gone.io").unwrap_err().to_string();
    assert!(
        e.contains("docker-credential-kiln-missing") && e.contains("cannot run"),
        "{e}"
    );
}

#[test]
fn store_merges_atomically_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("cfg/config.json");
    write(
        &cfg,
        r#"{"auths":{"https://other.io":{"auth":"b3RoZXI6eA=="},"http://h:5000/v2/":{"auth":"eDp5"}},"psFormat":"x"}"#,
    );
    let none = CredentialEnv::default();
    store(&none, &cfg, "h:5000", "me", "pw").unwrap();
    store(&none, &cfg, "docker.io", "hub", "pw2").unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(v["psFormat"], "x");
    assert_eq!(v["auths"]["https://other.io"]["auth"], "b3RoZXI6eA==");
    assert!(v["auths"].get("http://h:5000/v2/").is_none());
    assert_eq!(v["auths"]["h:5000"]["auth"], B64.encode("me:pw"));
    assert_eq!(
        v["auths"]["https://index.docker.io/v1/"]["auth"],
        B64.encode("hub:pw2")
    );
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let env = CredentialEnv {
        docker_config_dir: Some(d.path().join("cfg")),
        ..Default::default()
    };
    assert_eq!(
        basic(&lookup(&env, "h:5000").unwrap().unwrap()),
        ("me", "pw")
    );
    // A new file in a new directory.
    let fresh = d.path().join("new/dir/config.json");
    store(&none, &fresh, "a.io", "u", "p").unwrap();
    assert!(fresh.exists());
    write(&cfg, "not json");
    assert!(store(&none, &cfg, "h:5000", "me", "pw").is_err());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "not json");
}

/// With a credential helper configured (`credsStore`, or `credHelpers` for the registry), `store` goes through
/// it, as `docker login` does: the helper gets the secret, `config.json` only an empty entry, and a helper that is
/// missing or fails is an error naming it.
#[test]
fn store_goes_through_the_configured_helper() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let got = d.path().join("helper-got");
    let helper = bin.join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\necho \"$1\" > {0}\ncat >> {0}\n", got.display()),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let failing = bin.join("docker-credential-broken");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'keychain locked' >&2\ncat\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = CredentialEnv {
        path: Some(format!("{}:/usr/bin:/bin", bin.display()).into()),
        home: Some(d.path().to_path_buf()),
        ..Default::default()
    };
    let cfg = d.path().join("config.json");
    write(
        &cfg,
        r#"{"credsStore":"fake","auths":{"h:5000":{"auth":"b2xkOm9sZA=="}}}"#,
    );
    let said = store(&env, &cfg, "h:5000", "me", "s3cret").unwrap();
    assert!(
        said.contains("docker-credential-fake (credsStore in ~/config.json)"),
        "{said}"
    );
    let sent = std::fs::read_to_string(&got).unwrap();
    assert!(sent.starts_with("store\n"), "{sent}");
    let json: Value = serde_json::from_str(sent.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"ServerURL": "h:5000", "Username": "me", "Secret": "s3cret"})
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        !text.contains("b2xkOm9sZA==") && !text.contains("s3cret"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["auths"]["h:5000"], serde_json::json!({}));
    // credHelpers for the registry wins over credsStore; a failing helper stores nothing and says so.
    write(
        &cfg,
        r#"{"credsStore":"fake","credHelpers":{"h:5000":"broken"}}"#,
    );
    let e = store(&env, &cfg, "h:5000", "me", "s3cret")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("docker-credential-broken (credHelpers in ~/config.json)"),
        "{e}"
    );
    assert!(
        e.contains("keychain locked") && !e.contains("s3cret"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        r#"{"credsStore":"fake","credHelpers":{"h:5000":"broken"}}"#
    );
    // A helper that is not installed.
    write(&cfg, r#"{"credsStore":"missing"}"#);
    let e = store(&env, &cfg, "h:5000", "me", "s3cret")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("docker-credential-missing") && e.contains("cannot run it"),
        "{e}"
    );
}
