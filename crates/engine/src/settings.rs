//! The rules for values a user gives kiln, each in one place: the command line and kiln.toml both parse with these
//! (the file adds its line number to the error), so a value valid in one is valid in the other.

use std::path::PathBuf;

use crate::build::LayerSource;
use crate::error::{Error, Result};
use crate::walk::normalize_dest;

/// `K=V`; the key must be non-empty and without spaces.
pub fn parse_kv(flag: &'static str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(Error::invalid_arg(
            flag,
            s,
            "expected KEY=VALUE with a non-empty key without spaces",
        )),
    }
}

/// `PORT[/tcp|udp|sctp]` → `PORT/proto` (tcp when absent).
pub fn parse_expose(s: &str) -> Result<String> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let valid_port = port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with('0');
    if !valid_port || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(Error::invalid_arg(
            "--expose",
            s,
            "expected PORT or PORT/tcp|udp|sctp with PORT in 1-65535, e.g. 8080 or 53/udp",
        ));
    }
    Ok(format!("{port}/{proto}"))
}

/// The largest owner id a layer may carry. Ids are 32-bit (tar's PAX headers would take more, and GNU tar then
/// refuses the layer), and 4294967295 is `(uid_t)-1`, which chown(2) takes as "leave unchanged".
pub const MAX_ID: u32 = u32::MAX - 1;

/// `UID:GID`, numeric, each at most [`MAX_ID`].
pub fn parse_chown(s: &str) -> Result<(u32, u32)> {
    let bad = || {
        Error::invalid_arg(
            "--chown",
            s,
            format!("expected numeric UID:GID, each 0-{MAX_ID}, e.g. 1000:1000"),
        )
    };
    let id = |v: &str| v.parse::<u32>().ok().filter(|n| *n <= MAX_ID);
    let (u, g) = s.split_once(':').ok_or_else(bad)?;
    Ok((id(u).ok_or_else(bad)?, id(g).ok_or_else(bad)?))
}

/// Permission bits of a layer's regular files: octal, at most `07777` (`--layer …,mode=0644`, `[[layer]] mode`).
pub fn parse_mode(flag: &'static str, s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|v| *v <= 0o7777 && !s.is_empty() && !s.starts_with(['+', '-']))
        .ok_or_else(|| {
            Error::invalid_arg(
                flag,
                s,
                "expected octal permission bits up to 7777, e.g. 0644",
            )
        })
}

/// `SRC:DEST[,chown=UID:GID][,mode=OCTAL]`: options are recognised at the end only, so a `,` inside SRC is fine.
pub fn parse_layer(l: &str) -> Result<LayerSource> {
    let bad = |why: &str| Error::invalid_arg("--layer", l, why.to_string());
    let mut spec = l;
    let (mut chown, mut mode) = (None, None);
    while let Some((head, opt)) = spec.rsplit_once(',') {
        if let Some(c) = opt.strip_prefix("chown=") {
            chown = Some(parse_chown(c).map_err(|_| {
                bad(&format!(
                    "chown= takes numeric UID:GID, each 0-{MAX_ID}, e.g. chown=1000:1000"
                ))
            })?);
        } else if let Some(m) = opt.strip_prefix("mode=") {
            mode = Some(
                parse_mode("--layer", m)
                    .map_err(|_| bad("mode= takes octal permission bits, e.g. mode=0644"))?,
            );
        } else {
            break;
        }
        spec = head;
    }
    let (src, dest) = spec
        .rsplit_once(':')
        .filter(|(s, _)| !s.is_empty())
        .ok_or_else(|| bad("expected SRC:DEST, e.g. ./node_modules:/app/node_modules"))?;
    Ok(LayerSource {
        src: PathBuf::from(src),
        dest: normalize_dest(dest, "--layer")?,
        created_by: String::new(),
        chown,
        mode,
    })
}

/// `REGISTRY=MIRROR` (`--registry-mirror`, kiln.toml `registry-mirrors`): base images on `REGISTRY` are read
/// through `MIRROR` (`host[:port][/path]`, a pull-through cache such as `mirror.gcr.io` or a Harbor proxy
/// project `harbor.example.com/hub`) first. Both sides normalized as references are (`index.docker.io` is
/// `docker.io`).
pub fn parse_mirror(s: &str) -> Result<(String, String)> {
    let bad = || {
        Error::invalid_arg(
            "--registry-mirror",
            s,
            "expected REGISTRY=MIRROR, e.g. docker.io=mirror.gcr.io or docker.io=harbor.example.com/hub",
        )
    };
    let (registry, mirror) = s.split_once('=').ok_or_else(bad)?;
    let registry = crate::reference::normalize_registry(registry);
    let mirror = mirror.trim().trim_end_matches('/');
    let (host, path) = mirror.split_once('/').unwrap_or((mirror, ""));
    let host = crate::reference::normalize_registry(host);
    let ok = |h: &str| !h.is_empty() && !h.contains(['/', ' ', '@']);
    let bad_path = !path.is_empty()
        && path
            .split('/')
            .any(|c| c.is_empty() || c.contains(char::is_whitespace));
    if !ok(&registry) || !ok(&host) || bad_path {
        return Err(bad());
    }
    Ok(match path {
        "" => (registry, host),
        p => (registry, format!("{host}/{p}")),
    })
}

/// An `--exclude` pattern (kiln.toml `exclude`), as a `.dockerignore` line: checked, returned as given.
pub fn parse_exclude(s: &str) -> Result<String> {
    crate::walk::Pattern::parse(s)
        .map_err(|why| Error::invalid_arg("--exclude", s, why))
        .map(|_| s.to_string())
}

/// `SOURCE_DATE_EPOCH` (seconds since 1970): the time stamped on every entry and in the config. `None` when unset
/// or empty (builds then use 0; `{date}` in a tag template has no value).
pub fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().map(Some).map_err(|_| {
            Error::invalid_arg(
                "SOURCE_DATE_EPOCH",
                v,
                "expected a non-negative integer (seconds since 1970)",
            )
        }),
        _ => Ok(None),
    }
}

/// The cache directory: `--cache DIR` (or `$KILN_CACHE`, which clap reads into the flag) when given, else
/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, else a directory under the temp dir.
pub fn cache_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("kiln")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_and_expose() {
        assert_eq!(
            parse_kv("--env", "A=b=c").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert!(parse_kv("--env", "=x").is_err());
        assert!(parse_kv("--env", "novalue").is_err());
        assert_eq!(parse_expose("8080").unwrap(), "8080/tcp");
        assert_eq!(parse_expose("53/udp").unwrap(), "53/udp");
        for bad in ["0", "65536", "80/icmp", "x", "080"] {
            assert!(parse_expose(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mirrors() {
        assert_eq!(
            parse_mirror("index.docker.io=mirror.gcr.io").unwrap(),
            ("docker.io".into(), "mirror.gcr.io".into())
        );
        assert_eq!(
            parse_mirror("docker.io=harbor.example.com:8443/hub/").unwrap(),
            ("docker.io".into(), "harbor.example.com:8443/hub".into())
        );
        for bad in ["docker.io", "=m", "docker.io=", "a b=c", "docker.io=h//x"] {
            assert!(parse_mirror(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chown_ids_are_32_bit_and_not_minus_one() {
        assert_eq!(parse_chown("0:0").unwrap(), (0, 0));
        assert_eq!(parse_chown("4294967294:1000").unwrap(), (4294967294, 1000));
        for bad in [
            "4294967295:0",
            "0:4294967295",
            "4294967296:0",
            "0:18446744073709551616",
            "-1:0",
            "1000",
            "a:b",
        ] {
            assert_eq!(parse_chown(bad).unwrap_err().exit_code(), 2, "{bad}");
            assert!(
                parse_layer(&format!("./a:/a,chown={bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("mode", "0644").unwrap(), 0o644);
        assert_eq!(parse_mode("mode", "7777").unwrap(), 0o7777);
        for bad in ["", "8", "10000", "+644", "-1", "0x1"] {
            assert!(parse_mode("mode", bad).is_err(), "{bad}");
        }
    }
}
