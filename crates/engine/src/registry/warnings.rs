//! A registry's `Warning` headers (distribution spec, "Warnings": `Warning: 299 - "TEXT"`), each shown once per
//! run: a deprecation or a quota running low is worth one line, not one per request.

use std::collections::HashSet;
use std::sync::Mutex;

use reqwest::header::{HeaderMap, WARNING};
use url::Url;

use crate::events::Report;

/// The warnings shown so far.
#[derive(Default)]
pub(crate) struct Warnings(Mutex<HashSet<String>>);

impl Warnings {
    /// Show (as warnings, naming the host) the `Warning` headers of a response from `url` not shown yet.
    pub fn show(&self, report: &Report, url: &Url, headers: &HeaderMap) {
        for v in headers.get_all(WARNING) {
            let Some(text) = v.to_str().ok().and_then(parse_warning) else {
                continue;
            };
            let host = url.host_str().unwrap_or("the registry");
            let new = self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(format!("{host} {text}"));
            if new {
                report.warn(format_args!("{host} says: {text}"));
            }
        }
    }
}

/// The text of a `Warning: 299 - "TEXT"` header value (the only form the distribution spec uses; RFC 7234's
/// quoted-string, `\"` unescaped), at most 1024 characters.
fn parse_warning(v: &str) -> Option<String> {
    let rest = v.trim().strip_prefix("299")?.trim_start();
    let rest = rest.strip_prefix('-')?.trim_start().strip_prefix('"')?;
    let mut text = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(text.chars().take(1024).collect()),
            '\\' => text.push(chars.next()?),
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::events::{Bar, Events, Level};

    #[test]
    fn warnings_are_parsed_and_shown_once() {
        assert_eq!(
            parse_warning(r#"299 - "this registry is \"deprecated\"""#).as_deref(),
            Some(r#"this registry is "deprecated""#)
        );
        for bad in [
            "199 - \"x\"",
            "299 agent \"x\"",
            "299 - x",
            "299 - \"unterminated",
        ] {
            assert_eq!(parse_warning(bad), None, "{bad}");
        }
        struct Sink(Arc<Mutex<Vec<String>>>);
        impl Events for Sink {
            fn enabled(&self, _: Level) -> bool {
                true
            }
            fn message(&self, _: Level, msg: std::fmt::Arguments<'_>) {
                self.0.lock().unwrap().push(msg.to_string());
            }
            fn bar(&self, _: String, _: Option<u64>) -> Option<Arc<dyn Bar>> {
                None
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let report = Report::new(Arc::new(Sink(seen.clone())));
        let mut h = HeaderMap::new();
        h.append(WARNING, "299 - \"quota at 90%\"".parse().unwrap());
        let url = Url::parse("https://r.example/v2/").unwrap();
        let w = Warnings::default();
        w.show(&report, &url, &h);
        w.show(&report, &url, &h);
        assert_eq!(*seen.lock().unwrap(), ["r.example says: quota at 90%"]);
    }
}
