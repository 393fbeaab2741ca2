//! The command line: clap definitions (here), and the step from raw flags and kiln.toml to the engine's typed
//! plans (`build`, `tagging`, `registry`). Nothing here touches disk or network; `commands` runs the plans.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod build;
mod registry;
mod tagging;

pub use registry::{RegistryArgs, target_registry};
pub use tagging::TagArgs;

use kiln_engine::CompressionKind;
use kiln_engine::Split;

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
        In CI, KILN_REGISTRY_USERNAME and KILN_REGISTRY_PASSWORD work without a login (for the registry the \
        command publishes to or reads, or the one KILN_REGISTRY names).")]
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
    #[arg(long, default_value = "gzip", value_parser = compression_kind())]
    pub compression: CompressionKind,
    /// Compression level (gzip 1-9, default 1: kiln's fast deflate, 2-9: zlib-rs; zstd 1-19, default 3)
    #[arg(long)]
    pub compression_level: Option<i32>,
    /// Owner of every file in the layers, UID:GID
    #[arg(long, default_value = "0:0")]
    pub chown: String,
    /// Leave paths matching PATTERN out of every layer, as a .dockerignore line (*, ?, **, !PATTERN re-includes;
    /// relative to each directory's root), after the directory's own .kilnignore (repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
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
    /// Read the password from standard input (without it, kiln asks on the terminal, echo off; never on the
    /// command line)
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// `--compression`: the engine's names, listed in `--help` and completions.
fn compression_kind() -> impl clap::builder::TypedValueParser<Value = CompressionKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(CompressionKind::NAMES)
        .try_map(|s| s.parse::<CompressionKind>())
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
    /// Version scheme: auto (next v<N>), semver:patch|minor|major, git, or an explicit VALUE (=VALUE when it
    /// looks like a mistyped scheme)
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
