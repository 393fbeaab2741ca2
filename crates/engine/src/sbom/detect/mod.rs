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

use crate::sbom::detect::found::Found;
use crate::sbom::model::{self, Detection, FileRecord};

/// Scan the files. Never fails: what cannot be read or parsed is a warning naming the file.
pub fn detect(files: &[FileRecord]) -> Detection {
    detect_sorted(&model::sorted(files))
}

/// Scan files sorted by [`model::sorted`] (in path order, so that what is found does not depend on the order
/// the layer writer hashed them in).
pub fn detect_sorted(files: &[&FileRecord]) -> Detection {
    let mut found = Found::default();
    for &f in files {
        let (dir, name) = match f.path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", f.path.as_str()),
        };
        let r = match name {
            "package.json" if npm::is_installed_package(dir) => npm::package_json(f, &mut found),
            "package-lock.json" | "npm-shrinkwrap.json" => npm::lockfile(f, &mut found),
            "METADATA" if dir.ends_with(".dist-info") => {
                python::dist_info(f, dir, files, &mut found)
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
    let n = name.as_bytes();
    n.len() > 4
        && [b".jar", b".war", b".ear"]
            .iter()
            .any(|x| n[n.len() - 4..].eq_ignore_ascii_case(*x))
}

/// Whether a file is worth opening for ELF magic: executables and shared libraries have no extension or `.so`
/// ones; files with the common text, data and source extensions of build outputs are not opened at all (a
/// node_modules tree of 20 000 files opens none of its .js files). Called for every file: no allocation.
fn may_be_binary(name: &str, size: u64) -> bool {
    // Smaller than an ELF header with one section header: nothing to find.
    if size < 128 {
        return false;
    }
    let Some((_, ext)) = name.rsplit_once('.') else {
        return true;
    };
    let mut buf = [0u8; 12];
    let Some(lower) = buf.get_mut(..ext.len()) else {
        // Longer than any extension below.
        return true;
    };
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    !matches!(
        &*lower,
        b"js"
            | b"mjs"
            | b"cjs"
            | b"ts"
            | b"mts"
            | b"cts"
            | b"tsx"
            | b"jsx"
            | b"map"
            | b"json"
            | b"jsonc"
            | b"json5"
            | b"md"
            | b"markdown"
            | b"txt"
            | b"rst"
            | b"html"
            | b"htm"
            | b"css"
            | b"scss"
            | b"less"
            | b"svg"
            | b"png"
            | b"jpg"
            | b"jpeg"
            | b"gif"
            | b"webp"
            | b"avif"
            | b"bmp"
            | b"tiff"
            | b"ico"
            | b"woff"
            | b"woff2"
            | b"ttf"
            | b"eot"
            | b"otf"
            | b"mp3"
            | b"mp4"
            | b"pdf"
            | b"py"
            | b"pyc"
            | b"pyi"
            | b"pyd"
            | b"pth"
            | b"typed"
            | b"rb"
            | b"java"
            | b"class"
            | b"go"
            | b"rs"
            | b"c"
            | b"h"
            | b"cc"
            | b"cpp"
            | b"hpp"
            | b"sh"
            | b"bash"
            | b"csh"
            | b"fish"
            | b"ps1"
            | b"bat"
            | b"cmd"
            | b"yml"
            | b"yaml"
            | b"toml"
            | b"ini"
            | b"cfg"
            | b"conf"
            | b"env"
            | b"xml"
            | b"csv"
            | b"tsv"
            | b"lock"
            | b"log"
            | b"properties"
            | b"license"
            | b"licence"
            | b"gz"
            | b"tgz"
            | b"zip"
            | b"jar"
            | b"war"
            | b"ear"
            | b"xz"
            | b"bz2"
            | b"zst"
            | b"br"
            | b"wasm"
            | b"snap"
            | b"flow"
            | b"coffee"
            | b"vue"
            | b"svelte"
            | b"lua"
            | b"pl"
            | b"pm"
            | b"php"
            | b"proto"
            | b"sql"
            | b"mo"
            | b"po"
            | b"pem"
            | b"crt"
            | b"key"
            | b"webmanifest"
            | b"dat"
            | b"db"
            | b"sqlite"
    )
}

#[cfg(test)]
mod tests;
