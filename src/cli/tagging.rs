//! Flags shared by `build` and `push`: which version and tags to publish, and the tag policy.

use std::path::PathBuf;

use clap::Args;

use kiln_engine::Scheme;
use kiln_engine::TagPolicy;
use kiln_engine::TagRequest;
use kiln_engine::{Error, Result};

#[derive(Args, Debug, Clone)]
pub struct TagArgs {
    /// Tag to publish (repeatable), e.g. latest or {version}-{git_short_sha}
    ///
    /// Templates: {version}, {git_sha}, {git_short_sha}, {date}, {digest_short}, {env:NAME}.
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,
    /// Version to publish: auto, semver:patch|minor|major, git, or a VALUE
    ///
    /// auto: the next v<N>; semver:*: bump the highest X.Y.Z; git: git describe; VALUE: exactly that tag. A VALUE
    /// within two edits of a scheme name, or a bare patch|minor|major, is refused as a typo: write =VALUE to
    /// publish it anyway.
    #[arg(long = "version", value_name = "SCHEME")]
    pub version_scheme: Option<String>,
    /// With --version semver:*: publish a pre-release X.Y.Z-NAME.N
    #[arg(long, value_name = "NAME")]
    pub pre: Option<String>,
    /// With --version git: accept a dirty work tree (the version gets -dirty)
    #[arg(long)]
    pub allow_dirty: bool,
    /// Mint a new version even if this exact image already has one
    #[arg(long)]
    pub always_new: bool,
    /// Allow floating tags (latest, main, …); they are written last, after the version
    #[arg(long)]
    pub allow_floating: bool,
    /// Comma-separated tags treated as floating
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "latest,stable,edge,main,master,head,canary,dev,nightly"
    )]
    pub floating_tags: Vec<String>,
    /// Move a tag that already points at another image (never needed for new versions)
    #[arg(long)]
    pub force_tag: bool,
    /// Least wait, in ms, before a new version is read back to catch a racing publisher
    ///
    /// kiln waits 3x its own check-and-write time, at least this long (default 100). Raise it for a registry
    /// whose reads may lag its writes (replicated across regions).
    #[arg(long, value_name = "MS", env = "KILN_SETTLE_MS", value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub settle_ms: Option<u64>,
    /// Also write the reference to deploy (first stdout line) to this file
    #[arg(long, value_name = "PATH")]
    pub ref_file: Option<PathBuf>,
}

impl TagArgs {
    /// Validate the flags (scheme, templates) into a request; nothing is read or written.
    pub fn request(&self) -> Result<TagRequest> {
        let epoch = kiln_engine::settings::source_date_epoch()?;
        let scheme = self
            .version_scheme
            .as_deref()
            .map(|v| Scheme::parse(v, self.pre.as_deref(), self.allow_dirty))
            .transpose()?;
        if let Some(p) = &self.pre
            && !matches!(scheme, Some(Scheme::Semver { .. }))
        {
            return Err(Error::invalid_arg(
                "--pre",
                p,
                "--pre goes with --version semver:patch|minor|major",
            ));
        }
        let req = TagRequest {
            scheme,
            templates: self.tags.clone(),
            policy: TagPolicy {
                floating_allowed: self.allow_floating,
                floating_list: self.floating_tags.clone(),
                force: self.force_tag,
                always_new: self.always_new,
                settle: self
                    .settle_ms
                    .map_or(kiln_engine::SETTLE_FLOOR, std::time::Duration::from_millis),
                ..TagPolicy::default()
            },
            epoch: epoch.map(|e| e as i64),
        };
        req.validate()?;
        Ok(req)
    }
}
