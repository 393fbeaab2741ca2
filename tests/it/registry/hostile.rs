//! A registry's words reach the terminal as text, never as terminal commands: escape sequences (retitling the
//! terminal, clearing the screen) and CR/LF (forging a `kiln: …` line in a CI log) in error messages and bodies
//! are shown escaped.

use super::*;

#[test]
fn registry_text_cannot_drive_the_terminal() {
    let reg = Registry::start(Mode::open());
    let proxy = Proxy::start(&reg);
    let k = Kiln::new(&reg, &proxy.host(), Creds::None);
    let t = tempdir();
    let src = small_input(t.path(), "hostile", "hostile\n");
    let forged = "\u{1b}]0;pwned\u{7}\r\nkiln: summary: published everything\u{1b}[2J\u{9b}";
    let json =
        serde_json::json!({"errors": [{"code": "DENIED", "message": forged, "detail": forged}]});
    for body in [json.to_string().into_bytes(), forged.as_bytes().to_vec()] {
        proxy.clear_faults();
        proxy.inject(Fault::Reply {
            status: 400,
            body,
            matching: Matcher::new("PUT", "/manifests/"),
            times: usize::MAX,
        });
        let out = k.build_out(&src, "hostile", &["--tag", "v1", "-vv"]);
        let (_, se) = texts(&out);
        assert_eq!(code(&out), 1, "{se}");
        for c in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
            assert!(!se.contains(c), "raw {c:?} on stderr: {se:?}");
        }
        assert!(se.contains("\\x1b]0;pwned\\x07\\r\\nkiln: summary"), "{se}");
        assert!(
            !se.lines()
                .any(|l| l.starts_with("kiln: summary: published everything")),
            "{se}"
        );
    }
}
