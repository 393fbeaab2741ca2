//! Platforms (`os/arch[/variant]`): parsed from `--platform`, read from configs, written into descriptors.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Arch, ImageConfiguration, Os, Platform, PlatformBuilder};

use crate::error::{Error, Result};

/// `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    /// The platform of the machine kiln runs on (the usual case for build output made here).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        PlatformSpec {
            os: "linux".into(),
            arch: arch.into(),
            variant: None,
        }
    }

    pub fn to_oci(&self) -> Platform {
        let mut b = PlatformBuilder::default()
            .os(Os::from(self.os.as_str()))
            .architecture(Arch::from(self.arch.as_str()));
        if let Some(v) = &self.variant {
            b = b.variant(v.clone());
        }
        b.build().expect("platform has os and architecture")
    }

    pub fn of_config(c: &ImageConfiguration) -> Self {
        PlatformSpec {
            os: c.os().to_string(),
            arch: c.architecture().to_string(),
            variant: c.variant().clone(),
        }
    }
}

impl FromStr for PlatformSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(Error::invalid_arg(
                "--platform",
                s,
                "expected os/arch[/variant] in lowercase, e.g. linux/amd64, linux/arm64, linux/arm/v7",
            ));
        }
        Ok(normalize(parts[0], parts[1], parts.get(2).copied()))
    }
}

/// containerd's normalisation (what runtimes match against): `x86_64` → `amd64`; `aarch64`/`arm64` drop the
/// default variant `v8`; `arm` defaults to `v7`, `armhf` is `arm/v7`, `armel` is `arm/v6`; bare digits get a `v`.
pub fn normalize(os: &str, arch: &str, variant: Option<&str>) -> PlatformSpec {
    let v = |s: &str| {
        if s.starts_with('v') {
            s.to_string()
        } else {
            format!("v{s}")
        }
    };
    let (arch, variant) = match (arch, variant) {
        ("x86_64" | "x86-64", v) => ("amd64", v.map(str::to_string)),
        ("i386" | "i686", v) => ("386", v.map(str::to_string)),
        ("aarch64" | "arm64", None | Some("8" | "v8" | "v8.0")) => ("arm64", None),
        ("aarch64" | "arm64", Some(x)) => ("arm64", Some(v(x))),
        ("armhf", _) => ("arm", Some("v7".to_string())),
        ("armel", _) => ("arm", Some("v6".to_string())),
        ("arm", None | Some("7")) => ("arm", Some("v7".to_string())),
        ("arm", Some(x)) => ("arm", Some(v(x))),
        (a, v) => (a, v.map(str::to_string)),
    };
    PlatformSpec {
        os: os.into(),
        arch: arch.into(),
        variant,
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parse() {
        for (given, normal) in [
            ("linux/arm64/v8", "linux/arm64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/arm64/v9", "linux/arm64/v9"),
        ] {
            assert_eq!(given.parse::<PlatformSpec>().unwrap().to_string(), normal);
        }
        let p: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "Linux/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
    }
}
