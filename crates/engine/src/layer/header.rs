//! ustar headers with PAX extended headers where a value does not fit, written by hand so every byte is ours:
//! no pid, time, user or host name can leak into a layer.
//!
//! A value goes to a PAX record (`path`, `linkpath`, `size`, `uid`, `gid`, `mtime`) when the ustar field cannot
//! hold it: names over 100 bytes, numbers over their octal width, and names that are UTF-8 but not ASCII (PAX
//! names are UTF-8; readers such as GNU tar convert them to the locale, Go's archive/tar takes them verbatim).
//! A name that is not UTF-8 and fits stays in the ustar field, where every reader takes the bytes verbatim; a
//! longer one goes to PAX as raw bytes (GNU tar and Go keep bytes that do not convert as they are).

/// One block; headers are one block, data is padded to whole blocks.
pub const BLOCK: usize = 512;

pub const REGULAR: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const DIRECTORY: u8 = b'5';
const PAX_EXTENDED: u8 = b'x';

/// The fields of one entry as they go into the archive.
pub struct Fields<'a> {
    /// Archive path (directories with a trailing `/`).
    pub path: &'a [u8],
    /// Link target for symlinks and hardlinks, empty otherwise.
    pub link: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub size: u64,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// Append the header block(s) of `f` to `out`: a PAX extended header with its records if needed, then the ustar
/// header. Data (for regular files) follows, padded to a block, written by the caller.
pub fn encode(out: &mut Vec<u8>, f: &Fields<'_>) {
    let mut records = Vec::new();
    let name_fits = fits_ustar_name(f.path);
    let link_fits = fits_ustar_name(f.link);
    if !name_fits {
        pax_record(&mut records, "path", f.path);
    }
    if !link_fits {
        pax_record(&mut records, "linkpath", f.link);
    }
    // Octal widths: size and mtime 11 digits, uid/gid 7 digits.
    const MAX11: u64 = 0o777_7777_7777;
    const MAX7: u64 = 0o777_7777;
    let numeric = [
        ("size", f.size, MAX11),
        ("uid", f.uid, MAX7),
        ("gid", f.gid, MAX7),
        ("mtime", f.mtime, MAX11),
    ];
    for (key, v, max) in numeric {
        if v > max {
            pax_record(&mut records, key, v.to_string().as_bytes());
        }
    }
    if !records.is_empty() {
        let name = pax_header_name(f.path);
        let x = Fields {
            path: &name,
            link: b"",
            typeflag: PAX_EXTENDED,
            mode: 0o644,
            size: records.len() as u64,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        ustar(out, &x);
        out.extend_from_slice(&records);
        pad(out, records.len() as u64);
    }
    ustar(out, f);
}

/// Zero bytes to append after `len` bytes of data to end on a block boundary.
pub fn padding(len: u64) -> usize {
    (BLOCK - (len % BLOCK as u64) as usize) % BLOCK
}

fn pad(out: &mut Vec<u8>, len: u64) {
    out.resize(out.len() + padding(len), 0);
}

/// A name that can go into a ustar name or linkname field as is: at most 100 bytes, and ASCII or not UTF-8 at
/// all (a UTF-8 name would be taken verbatim by some readers and converted by others: PAX says what it means).
fn fits_ustar_name(name: &[u8]) -> bool {
    name.len() <= 100 && (name.is_ascii() || std::str::from_utf8(name).is_err())
}

/// `"<len> <key>=<value>\n"` where `<len>` counts the whole record, itself included.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while rest + decimal_digits(len) != len {
        len = rest + decimal_digits(len);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_digits(n: usize) -> usize {
    n.checked_ilog10().unwrap_or(0) as usize + 1
}

/// The PAX header's own name, only seen by readers that do not know PAX: `<dir>/PaxHeaders.0/<base>` like Go's
/// archive/tar (no pid, unlike GNU tar's default), ASCII only, at most 100 bytes.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut name: Vec<u8> = dir.iter().copied().filter(u8::is_ascii).collect();
    name.extend_from_slice(b"PaxHeaders.0/");
    name.extend(base.iter().copied().filter(u8::is_ascii));
    name.truncate(100);
    name
}

/// One ustar header block. Values that do not fit were put in PAX records by `encode`; their ustar fields get
/// what fits (a truncated ASCII name, 0 for numbers) for readers without PAX.
fn ustar(out: &mut Vec<u8>, f: &Fields<'_>) {
    let start = out.len();
    out.resize(start + BLOCK, 0);
    let h = &mut out[start..];
    put_name(&mut h[0..100], f.path);
    octal(&mut h[100..108], u64::from(f.mode & 0o7777));
    octal(&mut h[108..116], f.uid);
    octal(&mut h[116..124], f.gid);
    octal(&mut h[124..136], f.size);
    octal(&mut h[136..148], f.mtime);
    h[156] = f.typeflag;
    put_name(&mut h[157..257], f.link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // uname/gname (265..329) stay empty: owners are numeric only.
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    // Checksum: sum of all bytes with the checksum field as spaces, as 6 octal digits, NUL, space.
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}");
    h[148..154].copy_from_slice(digits.as_bytes());
    h[154] = 0;
}

fn put_name(field: &mut [u8], name: &[u8]) {
    if fits_ustar_name(name) {
        field[..name.len()].copy_from_slice(name);
    } else {
        for (dst, src) in field
            .iter_mut()
            .zip(name.iter().copied().filter(u8::is_ascii))
        {
            *dst = src;
        }
    }
}

/// Zero-padded octal filling all but the last byte of `field`, which stays NUL; 0 if `v` does not fit (the
/// value is then in a PAX record).
fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let v = if width * 3 < 64 && v >> (width * 3) != 0 {
        0
    } else {
        v
    };
    let s = format!("{v:0width$o}");
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for n in [
            0usize, 1, 5, 6, 7, 80, 85, 90, 95, 96, 97, 98, 99, 100, 990, 995, 996, 997, 1000,
        ] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &vec![b'a'; n]);
            let s = std::str::from_utf8(&out).unwrap();
            let (len, _) = s.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), out.len(), "{s}");
        }
    }

    #[test]
    fn short_ascii_entry_is_one_ustar_block() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &Fields {
                path: b"bin/server",
                link: b"",
                typeflag: REGULAR,
                mode: 0o4755,
                size: 21,
                uid: 1000,
                gid: 1000,
                mtime: 0,
            },
        );
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[100..108], b"0004755\0");
        assert_eq!(&out[124..136], b"00000000025\0");
        assert_eq!(&out[108..116], b"0001750\0");
        let h = tar::Header::from_byte_slice(&out);
        assert_eq!(h.cksum().unwrap(), {
            let mut c = out.clone();
            c[148..156].fill(b' ');
            c.iter().map(|&b| u32::from(b)).sum::<u32>()
        });
    }

    #[test]
    fn pax_header_name_is_fixed_and_ascii() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name("café/x".as_bytes()), b"caf/PaxHeaders.0/x");
        assert_eq!(pax_header_name(b"dir/"), b"PaxHeaders.0/dir");
        assert!(pax_header_name(&[b'a'; 300]).len() <= 100);
    }

    #[test]
    fn big_numbers_go_to_pax() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &Fields {
                path: b"f",
                link: b"",
                typeflag: REGULAR,
                mode: 0o644,
                size: 1 << 34,
                uid: 1 << 22,
                gid: 5,
                mtime: 1 << 40,
            },
        );
        let text = String::from_utf8_lossy(&out[BLOCK..2 * BLOCK]);
        assert!(text.contains("size=17179869184\n"), "{text}");
        assert!(text.contains("uid=4194304\n"), "{text}");
        assert!(text.contains("mtime=1099511627776\n"), "{text}");
        assert!(!text.contains("gid="), "{text}");
    }
}
