//! One request as the registry client's layers build it: method, URL, headers, body, the token scopes it needs,
//! and whether it may be retried.

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::body::Body;

/// What a token must allow (token spec, "Requesting a Token": `scope=repository:NAME:ACTIONS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope {
    repository: String,
    push: bool,
}

impl Scope {
    pub fn pull(repository: &str) -> Self {
        Scope {
            repository: repository.to_string(),
            push: false,
        }
    }

    pub fn push(repository: &str) -> Self {
        Scope {
            repository: repository.to_string(),
            push: true,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let actions = if self.push { "pull,push" } else { "pull" };
        write!(f, "repository:{}:{actions}", self.repository)
    }
}

pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    /// Token scopes this request needs.
    pub scopes: Vec<Scope>,
    /// Whether the transport may retry it (false for steps of an upload session: the session is retried whole).
    pub retry: bool,
}

impl Request {
    pub fn new(method: Method, url: Url, scopes: &[Scope]) -> Self {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            scopes: scopes.to_vec(),
            retry: true,
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub fn no_retry(mut self) -> Self {
        self.retry = false;
        self
    }
}
