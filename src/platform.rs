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
        Ok(PlatformSpec {
            os: parts[0].into(),
            arch: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
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
        let p: PlatformSpec = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v7"));
        assert_eq!(p.to_string(), "linux/arm/v7");
        for bad in ["linux", "linux/", "Linux/amd64", "a/b/c/d", "linux/amd 64"] {
            assert!(bad.parse::<PlatformSpec>().is_err(), "{bad}");
        }
    }
}
