//! Packages in the files kiln added, found by file name first: only files whose names match are opened
//! (package.json under node_modules, lock files, a dist-info's METADATA and RECORD, jars), and of the other files
//! only those that may be binaries, for their first bytes (ELF magic) and then just the section headers and the
//! one section that holds Go build info or cargo-auditable data. Every read is bounded; malformed metadata is a
//! warning, never an error.

mod cargo;
mod elf;
mod found;
mod jar;
mod npm;
mod python;

use std::collections::HashMap;

use crate::sbom::detect::found::Found;
use crate::sbom::model::{Detection, FileRecord};

/// Scan the files. Never fails: what cannot be read or parsed is a warning naming the file.
pub fn detect(files: &[FileRecord]) -> Detection {
    let mut found = Found::default();
    let by_path: HashMap<&str, &FileRecord> = files.iter().map(|f| (f.path.as_str(), f)).collect();
    // In path order, so that what is found does not depend on the order the layer writer hashed the files in.
    let mut sorted: Vec<&FileRecord> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        let (dir, name) = match f.path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", f.path.as_str()),
        };
        let r = match name {
            "package.json" if npm::is_installed_package(dir) => npm::package_json(f, &mut found),
            "package-lock.json" | "npm-shrinkwrap.json" => npm::lockfile(f, &mut found),
            "METADATA" if dir.ends_with(".dist-info") => {
                python::dist_info(f, dir, &by_path, &mut found)
            }
            "Cargo.lock" => cargo::lockfile(f, &mut found),
            _ if is_archive(name) => jar::scan(f, &mut found),
            _ if may_be_binary(name, f.size) => elf::scan(f, &mut found),
            _ => Ok(()),
        };
        if let Err(why) = r {
            found.warn(format!("{}: {why}; skipped", f.path));
        }
    }
    found.finish()
}

fn is_archive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jar", ".war", ".ear"].iter().any(|x| lower.ends_with(x))
}

/// Whether a file is worth opening for ELF magic: executables and shared libraries have no extension or `.so`
/// ones; files with the common text, data and source extensions of build outputs are not opened at all (a
/// node_modules tree of 20 000 files opens none of its .js files).
fn may_be_binary(name: &str, size: u64) -> bool {
    // Smaller than an ELF header with one section header: nothing to find.
    if size < 128 {
        return false;
    }
    let Some((_, ext)) = name.rsplit_once('.') else {
        return true;
    };
    const NOT_ELF: &[&str] = &[
        "js",
        "mjs",
        "cjs",
        "ts",
        "mts",
        "cts",
        "tsx",
        "jsx",
        "map",
        "json",
        "md",
        "markdown",
        "txt",
        "html",
        "htm",
        "css",
        "scss",
        "less",
        "svg",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "webp",
        "ico",
        "woff",
        "woff2",
        "ttf",
        "eot",
        "otf",
        "py",
        "pyc",
        "pyi",
        "pyd",
        "pth",
        "rb",
        "java",
        "class",
        "go",
        "rs",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "sh",
        "bash",
        "yml",
        "yaml",
        "toml",
        "ini",
        "cfg",
        "conf",
        "xml",
        "csv",
        "tsv",
        "lock",
        "log",
        "gz",
        "tgz",
        "zip",
        "jar",
        "war",
        "xz",
        "bz2",
        "zst",
        "br",
        "wasm",
        "pdf",
        "snap",
        "flow",
        "coffee",
        "vue",
        "svelte",
        "lua",
        "pl",
        "pm",
        "php",
        "proto",
        "sql",
        "properties",
        "license",
        "licence",
        "rst",
        "typed",
        "mo",
        "po",
        "pem",
        "crt",
        "key",
        "jsonc",
        "json5",
        "cjson",
        "webmanifest",
        "mp3",
        "mp4",
        "avif",
        "bmp",
        "tiff",
        "env",
        "dat",
        "bin",
        "db",
        "sqlite",
        "csh",
        "fish",
        "ps1",
        "bat",
        "cmd",
    ];
    let ext = ext.to_ascii_lowercase();
    !NOT_ELF.contains(&ext.as_str())
}

#[cfg(test)]
mod tests;
