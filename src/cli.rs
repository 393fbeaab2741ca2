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
    after_help = KILN_EXAMPLES,
    help_template = with_examples(KILN_EXAMPLES)
)]
pub struct Cli {
    /// Result format on stdout (logs always go to stderr)
    #[arg(long, global = true, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Text, help_heading = OUTPUT)]
    pub output: OutputFormat,
    /// Only print results and errors
    #[arg(short, long, global = true, help_heading = OUTPUT)]
    pub quiet: bool,
    /// More logging on stderr (-v: each HTTP request; -vv: plus headers)
    ///
    /// -v: each HTTP request with status and timing; -vv: plus headers, secrets masked.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,
    /// Progress on stderr
    ///
    /// auto: live bars on a terminal, plain lines otherwise; tty: always live; plain: one line per finished step;
    /// none.
    #[arg(long, global = true, value_name = "MODE", value_enum, default_value_t = ProgressArg::Auto, env = "KILN_PROGRESS", help_heading = OUTPUT)]
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

/// Help is the flags, then the examples exactly as written here: clap wraps `after_help` to the terminal's width,
/// and a command broken over two lines cannot be pasted. Each example is one command on one line. `after_help`
/// keeps the same text for the man page. (Template tags are `{name}`-like words: the examples must not contain
/// `{version}`, `{usage}` and the like.)
fn with_examples(examples: &str) -> String {
    format!(
        "{{before-help}}{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{{all-args}}\n\n{examples}\n"
    )
}

const KILN_EXAMPLES: &str = "Examples:
  kiln build ./dist --prefix /app --entrypoint /app/server --to oci:./images --version auto
  kiln build ./dist --prefix /app --entrypoint /app/server --to registry.example.com/team/app --version auto --ref-file ref.txt
  kiln pin -f deploy.yaml -i --ref-file ref.txt

Shell completions: kiln completions bash|zsh|fish; man page: kiln man";

const BUILD_EXAMPLES: &str = "Examples:
  kiln build ./dist --prefix /app --entrypoint /app/server --to oci:./images --version auto
  kiln build ./out --prefix /app --entrypoint /app/server --to registry.example.com/team/app --version auto --ref-file ref.txt
  kiln build ./dist --prefix /app/dist --layer ./node_modules:/app/node_modules --base node:22-slim --cmd node --cmd /app/dist/index.js
  kiln build --platform linux/amd64=out/amd64 --platform linux/arm64=out/arm64 --prefix /app --to oci:./images --version auto";

const PUSH_EXAMPLES: &str = "Examples:
  kiln push oci:./images:v1 registry.example.com/team/app:v1
  kiln push oci:./images:v3 registry.example.com/team/app --version auto --ref-file ref.txt
  kiln push oci:./images:v1 127.0.0.1:5000/app:v1 -v";

const LOGIN_EXAMPLES: &str = "Examples:
  kiln login registry.example.com -u alice
  echo \"$TOKEN\" | kiln login registry.example.com -u ci-bot --password-stdin
  kiln login ghcr.io -u \"$GITHUB_ACTOR\" --password-stdin < token.txt

On a terminal kiln asks for the password (not echoed). In CI, KILN_REGISTRY_USERNAME and
KILN_REGISTRY_PASSWORD work without a login (for the registry the command publishes to or reads,
or the one KILN_REGISTRY names).";

const INSPECT_EXAMPLES: &str = "Examples:
  kiln inspect oci:./images:v1
  kiln inspect registry.example.com/team/app:v3 --platform linux/arm64
  kiln inspect oci:./images:v1 --output json";

const SBOM_EXAMPLES: &str = "Examples:
  kiln sbom registry.example.com/team/app:v3 > sbom.spdx.json
  kiln sbom oci:./images:v1 | jq '.packages | length'";

const PROVENANCE_EXAMPLES: &str = "Examples:
  kiln provenance registry.example.com/team/app:v3 | jq .predicate
  kiln provenance oci:./images:v1 > provenance.intoto.json";

const TAGS_EXAMPLES: &str = "Examples:
  kiln tags oci:./images
  kiln tags registry.example.com/team/app --output json";

const NEXT_VERSION_EXAMPLES: &str = "Examples:
  kiln next-version oci:./images --version auto
  kiln next-version registry.example.com/team/app --version semver:minor --pre rc
  kiln next-version oci:./images --version git --dir ./src";

const PIN_EXAMPLES: &str = "Examples:
  kiln pin -f deploy.yaml -i --ref-file ref.txt
  kiln pin -f values.yaml --ref registry.example.com/team/web:v7@sha256:… > pinned.yaml
  kiln pin -f deploy.yaml -i --image nginx=docker.io/library/nginx:1.27@sha256:…";

const CHECK_EXAMPLES: &str = "Examples:
  kiln check -f k8s/
  kiln check -f deploy.yaml -f values.yaml --allow docker.io/library/busybox
  kiln check -f k8s/ --registry --output json";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  kiln completions bash > ~/.local/share/bash-completion/completions/kiln
  kiln completions zsh > \"${fpath[1]}/_kiln\"
  kiln completions fish > ~/.config/fish/completions/kiln.fish";

const MAN_EXAMPLES: &str = "Examples:
  kiln man > ~/.local/share/man/man1/kiln.1 && man kiln
  kiln man build | man -l -";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a directory of build output
    #[command(after_help = BUILD_EXAMPLES, help_template = with_examples(BUILD_EXAMPLES))]
    Build(Box<BuildArgs>),
    /// Push an image from a local OCI layout to a registry
    #[command(after_help = PUSH_EXAMPLES, help_template = with_examples(PUSH_EXAMPLES))]
    Push(Box<PushArgs>),
    /// Store registry credentials in docker's config.json (verified first)
    #[command(after_help = LOGIN_EXAMPLES, help_template = with_examples(LOGIN_EXAMPLES))]
    Login(LoginArgs),
    /// Show an image's manifest, config, layers and referrers
    #[command(after_help = INSPECT_EXAMPLES, help_template = with_examples(INSPECT_EXAMPLES))]
    Inspect(InspectArgs),
    /// Print the SBOM attached to an image (an SPDX or CycloneDX referrer)
    #[command(after_help = SBOM_EXAMPLES, help_template = with_examples(SBOM_EXAMPLES))]
    Sbom(ReferrerArgs),
    /// Print the build provenance attached to an image (an in-toto referrer)
    #[command(after_help = PROVENANCE_EXAMPLES, help_template = with_examples(PROVENANCE_EXAMPLES))]
    Provenance(ReferrerArgs),
    /// List a target's tags in version order, with the digest each points at
    #[command(after_help = TAGS_EXAMPLES, help_template = with_examples(TAGS_EXAMPLES))]
    Tags(TagsArgs),
    /// Print the version the next build would get, writing nothing
    #[command(
        name = "next-version",
        after_help = NEXT_VERSION_EXAMPLES,
        help_template = with_examples(NEXT_VERSION_EXAMPLES)
    )]
    NextVersion(NextVersionArgs),
    /// Pin image: values in YAML files to REPO:VERSION@sha256:… references
    #[command(after_help = PIN_EXAMPLES, help_template = with_examples(PIN_EXAMPLES))]
    Pin(PinArgs),
    /// Fail when deployment YAML names an image not pinned by digest (the gate before kubectl apply)
    #[command(after_help = CHECK_EXAMPLES, help_template = with_examples(CHECK_EXAMPLES))]
    Check(CheckArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell
    #[command(after_help = COMPLETIONS_EXAMPLES, help_template = with_examples(COMPLETIONS_EXAMPLES))]
    Completions(CompletionsArgs),
    /// Print kiln's man page (roff)
    #[command(hide = true, after_help = MAN_EXAMPLES, help_template = with_examples(MAN_EXAMPLES))]
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

/// `kiln build --help`'s sections, in the order they are shown.
const TARGET: &str = "Target and tags";
const IMAGE: &str = "Image config";
const LAYERS: &str = "Layers";
const SUPPLY_CHAIN: &str = "Supply chain";
const REGISTRY: &str = "Registry";
const OUTPUT: &str = "Output";

// `-h` shows each flag's first paragraph, `--help` all of it: keep the first paragraph one short line.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Directory whose contents become the image's main layer
    ///
    /// [default: kiln.toml's dir; optional when every --platform names its own, or for an image of only
    /// --layer directories]
    pub dir: Option<PathBuf>,
    /// Build settings file (keys are the long flag names; flags override it) [default: ./kiln.toml if present]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Where to publish: oci:PATH, REGISTRY/REPO or docker-archive:PATH
    ///
    /// oci:PATH[:TAG] is a local OCI layout (created if absent), REGISTRY/REPO[:TAG] a registry repository,
    /// docker-archive:PATH[:REPO:TAG] a tarball for docker/podman load.
    #[arg(long, value_name = "TARGET", default_value = "oci:kiln-images", help_heading = TARGET)]
    pub to: String,
    #[command(flatten, next_help_heading = TARGET)]
    pub tagging: TagArgs,

    /// Base image: scratch, oci:PATH:TAG or REGISTRY/REPO[:TAG|@sha256:…]
    ///
    /// A registry reference without a registry is on docker.io (library/ for a single name).
    #[arg(long, value_name = "REF", default_value = "scratch", help_heading = IMAGE)]
    pub base: String,
    /// Target platform os/arch[/variant], or os/arch[/variant]=DIR (repeatable)
    ///
    /// Default: the base's, else this machine's. Repeat as os/arch[/variant]=DIR to build one image per
    /// platform under an image index.
    #[arg(long = "platform", value_name = "PLATFORM[=DIR]", help_heading = IMAGE)]
    pub platforms: Vec<String>,
    /// Entrypoint argument (repeat for each argument)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true, help_heading = IMAGE)]
    pub entrypoint: Vec<String>,
    /// Cmd argument (repeat for each argument)
    #[arg(long, value_name = "ARG", allow_hyphen_values = true, help_heading = IMAGE)]
    pub cmd: Vec<String>,
    /// Environment variable K=V (merged into the base's by key)
    #[arg(long, value_name = "K=V", help_heading = IMAGE)]
    pub env: Vec<String>,
    /// Working directory
    #[arg(long, value_name = "PATH", help_heading = IMAGE)]
    pub workdir: Option<String>,
    /// User (name, UID or UID:GID)
    #[arg(long, value_name = "USER", help_heading = IMAGE)]
    pub user: Option<String>,
    /// Config label K=V
    #[arg(long, value_name = "K=V", help_heading = IMAGE)]
    pub label: Vec<String>,
    /// Manifest annotation K=V
    #[arg(long, value_name = "K=V", help_heading = IMAGE)]
    pub annotation: Vec<String>,
    /// Exposed port: PORT, PORT/tcp or PORT/udp
    #[arg(long, value_name = "PORT", help_heading = IMAGE)]
    pub expose: Vec<String>,

    /// Absolute path in the image where DIR's contents land
    #[arg(long, value_name = "PATH", default_value = "/", help_heading = LAYERS)]
    pub prefix: String,
    /// Extra layer SRC:DEST[,chown=UID:GID][,mode=OCTAL] (repeatable)
    ///
    /// A directory and where it lands, with an owner and file mode for this layer only; in order, after the main
    /// layer.
    #[arg(long, value_name = "SRC:DEST", help_heading = LAYERS)]
    pub layer: Vec<String>,
    /// Leave paths matching PATTERN out of every layer, as a .dockerignore line (repeatable)
    ///
    /// *, ?, **, !PATTERN re-includes; relative to each directory's root; applied after the directory's own
    /// .kilnignore.
    #[arg(long, value_name = "PATTERN", help_heading = LAYERS)]
    pub exclude: Vec<String>,
    /// How each directory is cut into layers: auto, off, or a SIZE like 32MiB
    ///
    /// Layers of about SIZE of tar at content-defined boundaries, large files in layers of their own, so a
    /// rebuild recompresses and pushes only the parts that changed: auto (2 MiB or more, about 16 parts per
    /// directory at most), a SIZE, or off (one layer per directory).
    #[arg(long, value_name = "auto|off|SIZE", default_value = "auto", help_heading = LAYERS)]
    pub split: Split,
    /// Layer compression
    #[arg(long, value_name = "KIND", default_value = "gzip", value_parser = compression_kind(), help_heading = LAYERS)]
    pub compression: CompressionKind,
    /// Compression level (gzip 1-9, zstd 1-19)
    ///
    /// gzip: default 1, kiln's fast deflate; 2-9 zlib-rs. zstd: default 3.
    #[arg(long, value_name = "N", help_heading = LAYERS)]
    pub compression_level: Option<i32>,
    /// Owner of every file in the layers, UID:GID
    #[arg(long, value_name = "UID:GID", default_value = "0:0", help_heading = LAYERS)]
    pub chown: String,
    /// Cache directory [default: ~/.cache/kiln]
    ///
    /// A local layout of built blobs for registry targets, and the layer cache.
    #[arg(long, value_name = "DIR", env = "KILN_CACHE", help_heading = LAYERS)]
    pub cache: Option<PathBuf>,
    /// SBOM attached to the image: spdx, cyclonedx or none
    ///
    /// Every file kiln adds (path, sha256, sha1) and the npm, Python, Go, Rust (cargo auditable, Cargo.lock) and
    /// Maven packages found among them, with the base image as one dependency; attached as an OCI 1.1 referrer,
    /// never inside the image.
    #[arg(long, value_name = "FORMAT", default_value = "spdx", env = "KILN_SBOM", help_heading = SUPPLY_CHAIN)]
    pub sbom: String,
    /// Also write the SBOM to this file (PATH.<os>-<arch> per platform for several)
    #[arg(long, value_name = "PATH", help_heading = SUPPLY_CHAIN)]
    pub sbom_file: Option<PathBuf>,
    /// Record the git remote and commit in the manifest (image.source, image.revision)
    ///
    /// The org.opencontainers.image.source and .revision annotations. Off by default: the image's digest then
    /// changes with every commit, so an unchanged rebuild from a new commit mints a new version. The provenance
    /// records both either way.
    #[arg(long, help_heading = SUPPLY_CHAIN)]
    pub source_annotations: bool,
    /// SLSA v1 provenance attached to the image: slsa or none
    #[arg(long, value_name = "MODE", default_value = "slsa", env = "KILN_PROVENANCE", help_heading = SUPPLY_CHAIN)]
    pub provenance: String,
    /// Compress every layer again instead of reusing an unchanged layer's blob from the cache
    #[arg(long, help_heading = LAYERS)]
    pub no_cache: bool,
    /// Remove cache entries unused for this many days (0: never)
    ///
    /// Checked once a day, after a build.
    #[arg(
        long,
        value_name = "DAYS",
        env = "KILN_CACHE_MAX_AGE",
        default_value_t = 14,
        help_heading = LAYERS
    )]
    pub cache_max_age: u32,

    #[command(flatten, next_help_heading = REGISTRY)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// oci:PATH[:TAG|@DIGEST] or docker-archive:PATH[:REPO:TAG]
    pub source: String,
    /// REGISTRY/REPO[:TAG]
    pub destination: String,
    #[command(flatten, next_help_heading = TARGET)]
    pub tagging: TagArgs,
    #[command(flatten, next_help_heading = REGISTRY)]
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
    #[command(flatten, next_help_heading = REGISTRY)]
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
    #[command(flatten, next_help_heading = REGISTRY)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct ReferrerArgs {
    /// oci:PATH[:TAG|@DIGEST] or REGISTRY/REPO[:TAG|@DIGEST]
    pub target: String,
    #[command(flatten, next_help_heading = REGISTRY)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct TagsArgs {
    /// oci:PATH (a local OCI layout) or REGISTRY/REPO
    pub target: String,
    #[command(flatten, next_help_heading = REGISTRY)]
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
    #[command(flatten, next_help_heading = REGISTRY)]
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
    /// Helm image: blocks get a digest: key (added when absent) and tag: the version, instead of tag:
    /// VERSION@sha256:… (blocks that already have digest: always do)
    #[arg(long)]
    pub helm_digest: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// YAML file, or directory searched for *.yaml and *.yml (repeatable)
    #[arg(short = 'f', long = "file", value_name = "FILE|DIR", required = true)]
    pub paths: Vec<PathBuf>,
    /// An image left floating on purpose: REPO (any tag) or kiln://NAME (repeatable)
    #[arg(long, value_name = "NAME")]
    pub allow: Vec<String>,
    /// Also look every pin up in its registry: the digest must exist and the tag still point at it
    #[arg(long = "registry")]
    pub online: bool,
    #[command(flatten, next_help_heading = REGISTRY)]
    pub registry: RegistryArgs,
}
