//! The command line: clap definitions, and the step from raw flags to a typed plan. Nothing here touches disk or
//! network; `commands` does the work.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

mod registry;
mod tagging;

pub use registry::RegistryArgs;
pub use tagging::TagArgs;

use crate::commands::build::{BuildPlan, LayerSource, created_by};
use kiln_engine::error::{Error, Result};
use kiln_engine::image::{ConfigSpec, PlatformSpec};
use kiln_engine::layer::Compression;
use kiln_engine::reference::Reference;
use kiln_engine::split::Split;
use kiln_engine::target::Target;
use kiln_engine::walk::normalize_dest;

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "Build OCI images from build output, without a daemon, and give every build a unique version",
    after_help = "Examples:\n  \
        kiln build ./dist --prefix /app --entrypoint /app/server --to oci:./images --version auto\n  \
        kiln build ./dist --prefix /app --entrypoint /app/server --to registry.example.com/team/app --version auto --ref-file ref.txt\n  \
        kiln pin -f deploy.yaml -i --ref-file ref.txt\n\n\
        Shell completions: kiln completions bash|zsh|fish; man page: kiln man"
)]
pub struct Cli {
    /// Result format on stdout (logs always go to stderr)
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Only print results and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// More logging on stderr (-v: each HTTP request with status and timing; -vv: plus headers, secrets masked)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Progress on stderr: auto (live bars on a terminal, plain lines otherwise), tty (always live), plain (one
    /// line per finished step), none
    #[arg(long, global = true, value_enum, default_value_t = ProgressArg::Auto, env = "KILN_PROGRESS")]
    pub progress: ProgressArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

/// `--progress`: how stderr shows work in progress.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Tty,
    Plain,
    None,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a directory of build output
    #[command(after_help = "Examples:\n  \
        kiln build ./dist --prefix /app --entrypoint /app/server --to oci:./images --version auto\n  \
        kiln build ./out --prefix /app --entrypoint /app/server --to registry.example.com/team/app --version auto --ref-file ref.txt\n  \
        kiln build ./dist --layer ./node_modules:/app/node_modules --prefix /app/dist --base docker.io/library/node:22-slim --cmd node --cmd /app/dist/index.js --to oci:./images --tag v1")]
    Build(Box<BuildArgs>),
    /// Push an image from a local OCI layout to a registry
    #[command(after_help = "Examples:\n  \
        kiln push oci:./images:v1 registry.example.com/team/app:v1\n  \
        kiln push oci:./images:v3 registry.example.com/team/app --version auto --ref-file ref.txt\n  \
        kiln push oci:./images:v1 127.0.0.1:5000/app:v1 -v")]
    Push(Box<PushArgs>),
    /// Store registry credentials in docker's config.json (verified first)
    #[command(after_help = "Examples:\n  \
        echo \"$TOKEN\" | kiln login registry.example.com -u ci-bot --password-stdin\n  \
        kiln login ghcr.io -u \"$GITHUB_ACTOR\" --password-stdin < token.txt\n\n\
        In CI, KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD work without a login.")]
    Login(LoginArgs),
    /// Show an image's manifest, config and layers
    #[command(after_help = "Examples:\n  \
        kiln inspect oci:./images:v1\n  \
        kiln inspect registry.example.com/team/app:v3 --platform linux/arm64\n  \
        kiln inspect oci:./images:v1 --output json")]
    Inspect(InspectArgs),
    /// List a target's tags in version order, with the digest each points at
    #[command(after_help = "Examples:\n  \
        kiln tags oci:./images\n  \
        kiln tags registry.example.com/team/app --output json")]
    Tags(TagsArgs),
    /// Print the version the next build would get, writing nothing
    #[command(
        name = "next-version",
        after_help = "Examples:\n  kiln next-version oci:./images --version auto\n  \
            kiln next-version registry.example.com/team/app --version semver:minor --pre rc\n  \
            kiln next-version oci:./images --version git --dir ./src"
    )]
    NextVersion(NextVersionArgs),
    /// Pin image: values in YAML files to REPO:VERSION@sha256:… references
    #[command(after_help = "Examples:\n  \
        kiln pin -f deploy.yaml -i --ref-file ref.txt\n  \
        kiln pin -f values.yaml --ref registry.example.com/team/web:v7@sha256:… > pinned.yaml\n  \
        kiln pin -f deploy.yaml -i --image nginx=docker.io/library/nginx:1.27@sha256:…")]
    Pin(PinArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell
    #[command(after_help = "Examples:\n  \
        kiln completions bash > ~/.local/share/bash-completion/completions/kiln\n  \
        kiln completions zsh > \"${fpath[1]}/_kiln\"\n  \
        kiln completions fish > ~/.config/fish/completions/kiln.fish")]
    Completions(CompletionsArgs),
    /// Print kiln's man page (roff)
    #[command(
        hide = true,
        after_help = "Examples:\n  kiln man > ~/.local/share/man/man1/kiln.1 && man kiln\n  kiln man build | man -l -"
    )]
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand's page (kiln-SUBCOMMAND(1)) instead of kiln(1)
    pub subcommand: Option<String>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Directory whose contents become the image's main layer [default: kiln.toml's dir; optional when every
    /// --platform names its own]
    pub dir: Option<PathBuf>,
    /// Build settings file (keys are the long flag names; flags override it) [default: ./kiln.toml if present]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where to publish: oci:PATH (a local OCI layout, created if absent), docker-archive:PATH[:REPO:TAG] (a
    /// tarball for docker/podman load), or REGISTRY/REPO[:TAG]
    /// Where to publish: oci:PATH[:TAG] (a local OCI layout, created if absent) or REGISTRY/REPO[:TAG]
    #[arg(long, default_value = "oci:kiln-images")]
    pub to: String,
    /// Base image: scratch, oci:PATH:TAG, or REGISTRY/REPO[:TAG|@sha256:…] (docker.io/library/ when no registry)
    #[arg(long, default_value = "scratch")]
    pub base: String,
    /// Absolute path in the image where DIR's contents land
    #[arg(long, default_value = "/")]
    pub prefix: String,
    /// Entrypoint argument (repeat for each argument)
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Cmd argument (repeat for each argument)
    #[arg(long, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    /// Environment variable K=V (merged into the base's by key)
    #[arg(long)]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long)]
    pub workdir: Option<String>,
    /// User (name, UID or UID:GID)
    #[arg(long)]
    pub user: Option<String>,
    /// Config label K=V
    #[arg(long)]
    pub label: Vec<String>,
    /// Manifest annotation K=V
    #[arg(long)]
    pub annotation: Vec<String>,
    /// Exposed port: PORT, PORT/tcp or PORT/udp
    #[arg(long)]
    pub expose: Vec<String>,
    /// Target platform os/arch[/variant] (default: the base's, else this machine's); repeat as
    /// os/arch[/variant]=DIR to build one image per platform under an image index
    #[arg(long = "platform", value_name = "PLATFORM[=DIR]")]
    pub platforms: Vec<String>,
    /// Extra layer SRC:DEST[,chown=UID:GID][,mode=OCTAL] (a directory and where it lands; owner and file mode for
    /// this layer only), in order, after the main layer
    #[arg(long)]
    pub layer: Vec<String>,
    /// Layer compression
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// Compression level (gzip 1-9, default 1: kiln's fast deflate, 2-9: zlib-rs; zstd 1-19, default 3)
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Owner of every file in the layers, UID:GID
    #[arg(long, default_value = "0:0")]
    pub chown: String,
    #[command(flatten)]
    pub tagging: TagArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Cache directory: a local layout of built blobs for registry targets, and the layer cache [default: ~/.cache/kiln]
    #[arg(long, value_name = "DIR", env = "KILN_CACHE")]
    pub cache: Option<PathBuf>,
    /// Compress every layer again instead of reusing an unchanged layer's blob from the cache
    #[arg(long)]
    pub no_cache: bool,
    /// Remove cache entries unused for this many days (checked once a day, after a build; 0: never)
    #[arg(
        long,
        value_name = "DAYS",
        env = "KILN_CACHE_MAX_AGE",
        default_value_t = 14
    )]
    pub cache_max_age: u32,
    /// Cut each directory into layers of about SIZE of tar at content-defined boundaries, large files in layers
    /// of their own, so a rebuild recompresses and pushes only the parts that changed: auto (2 MiB or more, about
    /// 16 parts per directory at most), a SIZE like 32MiB, or off (one layer per directory)
    #[arg(long, value_name = "auto|off|SIZE", default_value = "auto")]
    pub split: Split,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// oci:PATH[:TAG|@DIGEST] or docker-archive:PATH[:REPO:TAG]
    pub source: String,
    /// REGISTRY/REPO[:TAG]
    pub destination: String,
    #[command(flatten)]
    pub tagging: TagArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host[:port]
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// Read the password from standard input (the only way: never on the command line)
    #[arg(long, required = true)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// oci:PATH[:TAG|@DIGEST] or REGISTRY/REPO[:TAG|@DIGEST]
    pub target: String,
    /// For a multi-platform image: the platform to show (default: list them)
    #[arg(long)]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct TagsArgs {
    /// oci:PATH (a local OCI layout) or REGISTRY/REPO
    pub target: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct NextVersionArgs {
    /// oci:PATH (a local OCI layout; one that does not exist yet has no tags) or REGISTRY/REPO
    pub target: String,
    /// Version scheme: auto (next v<N>), semver:patch|minor|major, git, or an explicit VALUE
    #[arg(long = "version", value_name = "SCHEME")]
    pub version_scheme: String,
    /// With --version semver:*: a pre-release X.Y.Z-NAME.N
    #[arg(long, value_name = "NAME")]
    pub pre: Option<String>,
    /// With --version git: accept a dirty work tree (the version gets -dirty)
    #[arg(long)]
    pub allow_dirty: bool,
    /// With --version git: the directory whose repository is described (the build's DIR)
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PinArgs {
    /// YAML file to rewrite (repeatable; exactly one without -i)
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Rewrite the files in place (atomically) instead of printing the result
    #[arg(short = 'i', long)]
    pub in_place: bool,
    /// A pinned reference REPO:VERSION@sha256:… (e.g. kiln build's first stdout line); pins values naming
    /// REPO and the placeholder kiln://<last component of REPO> (repeatable)
    #[arg(long = "ref", value_name = "REF")]
    pub refs: Vec<String>,
    /// A file of pinned references, one per line (as written by kiln build --ref-file) (repeatable)
    #[arg(long = "ref-file", value_name = "PATH")]
    pub ref_files: Vec<PathBuf>,
    /// NAME=REF: pin values naming repository NAME or the placeholder kiln://NAME (only the placeholder when
    /// NAME is kiln://…) to REF, which must carry a digest; wins over --ref (repeatable)
    #[arg(long = "image", value_name = "NAME=REF")]
    pub images: Vec<String>,
}

/// Parse `K=V`; the key must be non-empty.
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
            let v = u32::from_str_radix(m, 8)
                .ok()
                .filter(|v| *v <= 0o7777 && !m.is_empty())
                .ok_or_else(|| bad("mode= takes octal permission bits, e.g. mode=0644"))?;
            mode = Some(v);
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

/// `PORT[/tcp|udp]` → `PORT/proto` (tcp when absent).
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

pub fn parse_chown(s: &str) -> Result<(u64, u64)> {
    let bad = || Error::invalid_arg("--chown", s, "expected numeric UID:GID, e.g. 1000:1000");
    let (u, g) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?))
}

/// gzip level when none is given: level 1 is kiln's own deflate (`src/layer/pgzip/deflate.rs`), about twice as
/// fast as zlib-rs at level 2 and smaller than `igzip -1` on build output; levels 2-9 are zlib-rs's.
pub const DEFAULT_GZIP_LEVEL: i32 = 1;

/// `SOURCE_DATE_EPOCH` (seconds since 1970, default 0): the time stamped on every entry and in the config.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v.trim().parse().map_err(|_| {
            Error::invalid_arg(
                "SOURCE_DATE_EPOCH",
                v,
                "expected a non-negative integer (seconds since 1970)",
            )
        }),
        _ => Ok(0),
    }
}

impl BuildArgs {
    /// `--platform` values: one without `=DIR` is the single platform of a plain build; several (or any with
    /// `=DIR`) make a multi-platform build, each entry's DIR (or the shared DIR) as its main layer.
    #[allow(clippy::type_complexity)]
    fn platforms(&self) -> Result<(Option<PlatformSpec>, Vec<(PlatformSpec, Option<PathBuf>)>)> {
        let mut list = Vec::new();
        for v in &self.platforms {
            let (p, dir) = match v.split_once('=') {
                Some((p, d)) if !d.is_empty() => (p, Some(PathBuf::from(d))),
                Some(_) => {
                    return Err(Error::invalid_arg(
                        "--platform",
                        v,
                        "expected os/arch[/variant] or os/arch[/variant]=DIR",
                    ));
                }
                None => (v.as_str(), None),
            };
            let p: PlatformSpec = p.parse()?;
            if list.iter().any(|(q, _)| *q == p) {
                return Err(Error::invalid_arg(
                    "--platform",
                    v,
                    "each platform may be given once",
                ));
            }
            list.push((p, dir));
        }
        Ok(match list.as_slice() {
            [] => (None, Vec::new()),
            [(p, None)] => (Some(p.clone()), Vec::new()),
            _ => (None, list),
        })
    }

    /// Validate every flag and turn them into a plan. Nothing is touched before this succeeds.
    pub fn plan(&self) -> Result<BuildPlan> {
        let target: Target = self.to.parse()?;
        if let Target::Registry(r) = &target {
            Reference::destination(r, "--to")?;
        }
        let tagging = self.tagging.request()?;
        let prefix = normalize_dest(&self.prefix, "--prefix")?;
        let dir = match (&self.dir, self.platforms.iter().all(|p| p.contains('='))) {
            (Some(d), _) => d.clone(),
            (None, true) if !self.platforms.is_empty() => PathBuf::from("."),
            _ => {
                return Err(Error::Usage(
                    "no build directory: give DIR (kiln build DIR), a kiln.toml with dir = \"…\", or \
                     --platform os/arch=DIR for every platform"
                        .into(),
                ));
            }
        };
        let mut layers = vec![LayerSource {
            src: dir,
            dest: prefix,
            created_by: String::new(),
            chown: None,
            mode: None,
        }];
        for l in &self.layer {
            layers.push(parse_layer(l)?);
        }
        let compression = match (self.compression, self.compression_level) {
            (CompressionArg::Gzip, l) => {
                let level = l.unwrap_or(DEFAULT_GZIP_LEVEL);
                if !(1..=9).contains(&level) {
                    return Err(Error::invalid_arg(
                        "--compression-level",
                        level.to_string(),
                        "gzip levels are 1-9",
                    ));
                }
                Compression::Gzip {
                    level: level as u32,
                }
            }
            (CompressionArg::Zstd, l) => {
                let level = l.unwrap_or(3);
                if !(1..=19).contains(&level) {
                    return Err(Error::invalid_arg(
                        "--compression-level",
                        level.to_string(),
                        "zstd levels are 1-19",
                    ));
                }
                Compression::Zstd { level }
            }
            (CompressionArg::None, _) => Compression::None,
        };
        for l in &mut layers {
            l.created_by = created_by(&l.src, &l.dest, compression);
        }
        let (single, platforms) = self.platforms()?;
        let config = ConfigSpec {
            platform: single,
            entrypoint: (!self.entrypoint.is_empty()).then(|| self.entrypoint.clone()),
            cmd: (!self.cmd.is_empty()).then(|| self.cmd.clone()),
            env: self
                .env
                .iter()
                .map(|e| parse_kv("--env", e))
                .collect::<Result<_>>()?,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            labels: self
                .label
                .iter()
                .map(|e| parse_kv("--label", e))
                .collect::<Result<_>>()?,
            expose: self
                .expose
                .iter()
                .map(|e| parse_expose(e))
                .collect::<Result<_>>()?,
            annotations: self
                .annotation
                .iter()
                .map(|e| parse_kv("--annotation", e))
                .collect::<Result<_>>()?,
            created: source_date_epoch()?,
        };
        if let Some(w) = &config.workdir
            && !w.starts_with('/')
        {
            return Err(Error::invalid_arg(
                "--workdir",
                w,
                "expected an absolute path, e.g. /app",
            ));
        }
        let base = match self.base.as_str() {
            "scratch" => None,
            b => Some(b.parse::<Target>()?),
        };
        let (uid, gid) = parse_chown(&self.chown)?;
        Ok(BuildPlan {
            target,
            tagging,
            base,
            layers,
            config,
            compression,
            uid,
            gid,
            platforms,
            registry: self.registry.options(0),
            cache: self.cache.clone().unwrap_or_else(default_cache),
            no_cache: self.no_cache,
            cache_max_age: self.cache_max_age,
            split: self.split,
        })
    }
}

/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, else a directory under the temp dir.
pub fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("kiln")
}

/// Run the CLI: parse, dispatch, print the error chain; returns the exit code.
pub fn main() -> i32 {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (mut cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = with_config_file(&mut cli, &matches).and_then(|()| crate::commands::run(&cli));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprint!("{}", error_report(&e));
            e.exit_code()
        }
    }
}

/// `kiln build`: fill what the command line did not say from kiln.toml (`config_file`).
fn with_config_file(cli: &mut Cli, matches: &ArgMatches) -> Result<()> {
    if let (Command::Build(args), Some(("build", m))) = (&mut cli.command, matches.subcommand()) {
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        crate::config_file::load_into(args, &given)?;
    }
    Ok(())
}

/// The error as printed: `kiln: error: WHAT`, one `caused by:` line per cause that adds something (a cause whose
/// text the line above already contains — an I/O error under the path that failed — is left out), then the next
/// step when there is one.
pub fn error_report(e: &Error) -> String {
    let mut out = format!("kiln: error: {e}\n");
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        last = text;
        src = s.source();
    }
    if let Some(h) = e.hint() {
        out.push_str(&format!("  hint: {h}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_report_drops_repeated_causes_and_adds_the_next_step() {
        let e = Error::io("nodir", std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("reading build output nodir");
        let r = error_report(&e);
        assert_eq!(r.matches("not found").count(), 1, "{r}");
        assert!(
            r.starts_with("kiln: error: reading build output nodir\n  caused by: nodir: "),
            "{r}"
        );
        assert!(r.contains("hint: check the path nodir"), "{r}");
    }

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
}
