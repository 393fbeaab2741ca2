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

/// `UID:GID`, numeric.
pub fn parse_chown(s: &str) -> Result<(u64, u64)> {
    let bad = || Error::invalid_arg("--chown", s, "expected numeric UID:GID, e.g. 1000:1000");
    let (u, g) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?))
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
            chown = Some(
                parse_chown(c)
                    .map_err(|_| bad("chown= takes numeric UID:GID, e.g. chown=1000:1000"))?,
            );
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
    fn modes() {
        assert_eq!(parse_mode("mode", "0644").unwrap(), 0o644);
        assert_eq!(parse_mode("mode", "7777").unwrap(), 0o7777);
        for bad in ["", "8", "10000", "+644", "-1", "0x1"] {
            assert!(parse_mode("mode", bad).is_err(), "{bad}");
        }
    }
}
