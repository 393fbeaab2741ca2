//! `--tag` templates: `{version}`, `{git_sha}`, `{git_short_sha}`, `{date}`, `{digest_short}`, `{env:NAME}`.
//!
//! * `{date}` is the UTC day `YYYYMMDD` of [`TemplateContext::epoch`]: the caller passes `SOURCE_DATE_EPOCH`
//!   when it is set (the same value the image's timestamps use, so a rebuild renders the same tag), otherwise
//!   the current time.
//! * `{digest_short}` is the first 12 hex digits of the image digest, only known once the image is built
//!   ([`needs_digest`]).
//! * `{env:NAME}` is inserted as is: a value outside the tag grammar (e.g. a branch `feature/x`) is an error,
//!   never silently rewritten.
//!
//! There is no escaping: `{` and `}` cannot occur in tags anyway.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::tag::Tag;

/// The values placeholders expand to; `None` means "not known here" and makes a template using it fail.
pub struct TemplateContext<'a> {
    pub version: Option<Tag>,
    pub git_sha: Option<String>,
    pub git_short_sha: Option<String>,
    /// Seconds since the Unix epoch for `{date}` (`SOURCE_DATE_EPOCH`, else now).
    pub epoch: Option<i64>,
    pub digest: Option<Digest>,
    /// Environment lookup for `{env:NAME}` (`|n| std::env::var(n).ok()` in the CLI; a map in tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Default for TemplateContext<'_> {
    fn default() -> Self {
        TemplateContext {
            version: None,
            git_sha: None,
            git_short_sha: None,
            epoch: None,
            digest: None,
            env: &|_| None,
        }
    }
}

const KNOWN: &str = "{version}, {git_sha}, {git_short_sha}, {date}, {digest_short}, {env:NAME}";

/// Whether the template uses `{digest_short}`, which is only known after the image is built.
pub fn needs_digest(template: &str) -> bool {
    template.contains("{digest_short}")
}

/// Expand `template` into a tag.
pub fn render(template: &str, ctx: &TemplateContext) -> Result<Tag> {
    let fail = |reason: String| Error::Template {
        template: template.to_string(),
        reason,
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(syntax(template, "a '}' without '{'".into()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| syntax(template, "a '{' without '}'".into()))?;
        let name = &rest[open + 1..open + close];
        let missing = |what: &str| fail(format!("{{{name}}} is not available: {what}"));
        let value = match name {
            "version" => ctx
                .version
                .as_ref()
                .map(Tag::to_string)
                .ok_or_else(|| missing("no version scheme (--version) is in use"))?,
            "git_sha" | "git_short_sha" => {
                let v = if name == "git_sha" {
                    &ctx.git_sha
                } else {
                    &ctx.git_short_sha
                };
                v.clone()
                    .ok_or_else(|| missing("the build context is not in a git repository"))?
            }
            "date" => ctx
                .epoch
                .map(yyyymmdd)
                .ok_or_else(|| missing("no build date (SOURCE_DATE_EPOCH)"))?,
            "digest_short" => ctx
                .digest
                .as_ref()
                .map(|d| d.short().to_string())
                .ok_or_else(|| missing("the image digest is not known yet"))?,
            _ => match name.strip_prefix("env:") {
                Some(var) if is_env_name(var) => (ctx.env)(var)
                    .ok_or_else(|| missing(&format!("environment variable {var} is not set")))?,
                Some(var) => {
                    return Err(syntax(
                        template,
                        format!("{var:?} is not an environment variable name"),
                    ));
                }
                None => return Err(syntax(template, format!("unknown placeholder {{{name}}}"))),
            },
        };
        out.push_str(&value);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.parse().map_err(|_| {
        fail(format!(
            "renders to {out:?}, which is not a tag (1-128 of [A-Za-z0-9_.-], not starting with '.' or '-')"
        ))
    })
}

/// A template that cannot be valid whatever the values: a usage error (exit 2).
fn syntax(template: &str, reason: String) -> Error {
    Error::invalid_arg(
        "--tag",
        template,
        format!("{reason}; placeholders are {KNOWN}"),
    )
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// UTC calendar day of a Unix time as `YYYYMMDD` (proleptic Gregorian).
fn yyyymmdd(epoch: i64) -> String {
    let (y, m, d) = crate::image::civil_from_days(epoch.div_euclid(86_400));
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_env(name: &str) -> Option<String> {
        match name {
            "BUILD" => Some("42".into()),
            "BRANCH" => Some("feature/x".into()),
            _ => None,
        }
    }

    fn full() -> TemplateContext<'static> {
        TemplateContext {
            version: Some("v7".parse().unwrap()),
            git_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_short_sha: Some("0123456".into()),
            epoch: Some(1_700_000_000),
            digest: Some(Digest::of(b"")),
            env: &ctx_env,
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let t = render(
            "{version}-{git_short_sha}-{date}-{digest_short}-b{env:BUILD}",
            &full(),
        )
        .unwrap();
        assert_eq!(t.as_str(), "v7-0123456-20231114-e3b0c44298fc-b42");
        let t = render("{git_sha}", &full()).unwrap();
        assert_eq!(t.as_str().len(), 40);
        assert_eq!(render("plain", &full()).unwrap().as_str(), "plain");
    }

    #[test]
    fn dates() {
        assert_eq!(yyyymmdd(0), "19700101");
        assert_eq!(yyyymmdd(-1), "19691231");
        assert_eq!(yyyymmdd(951_782_400), "20000229");
        assert_eq!(yyyymmdd(4_102_444_799), "20991231");
    }

    #[test]
    fn errors_name_the_template() {
        let none = TemplateContext::default();
        for (tpl, ctx, want) in [
            ("{git_sha}", &none, "not in a git repository"),
            ("x-{digest_short}", &none, "not known yet"),
            ("{version}", &none, "no version scheme"),
            ("{date}", &none, "SOURCE_DATE_EPOCH"),
            ("{env:NOPE}", &full(), "NOPE is not set"),
            ("{env:BRANCH}", &full(), "\"feature/x\", which is not a tag"),
            ("-{version}", &full(), "not a tag"),
        ] {
            let e = render(tpl, ctx).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(tpl) && msg.contains(want), "{tpl}: {msg}");
            assert_eq!(e.exit_code(), 1);
        }
        for tpl in ["{sha}", "{version", "v}", "{env:1X}", "{}"] {
            let e = render(tpl, &full()).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{tpl}: {e}");
            assert!(e.to_string().contains(tpl), "{e}");
        }
    }

    #[test]
    fn digest_dependency() {
        assert!(needs_digest("{version}-{digest_short}"));
        assert!(!needs_digest("{version}-{git_sha}"));
    }
}
